package weir.flink.mysql;

import org.apache.flink.connector.jdbc.core.database.dialect.AbstractDialectConverter;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.types.logical.LocalZonedTimestampType;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.RowType;

import java.sql.Timestamp;
import java.sql.Types;
import java.time.LocalDateTime;
import java.time.ZoneOffset;

/**
 * Flink rows to JDBC parameters and back. The base class covers MySQL's types; this adds
 * TIMESTAMP_LTZ (an instant), kept in DATETIME/TIMESTAMP columns as its UTC wall-clock time,
 * as Weir's own sink writes instants (its session time zone is UTC).
 */
public class WeirMySqlConverter extends AbstractDialectConverter {
    private static final long serialVersionUID = 1L;

    public WeirMySqlConverter(RowType rowType) {
        super(rowType);
    }

    @Override
    public String converterName() {
        return "MySQL";
    }

    @Override
    protected JdbcDeserializationConverter createInternalConverter(LogicalType type) {
        if (type instanceof LocalZonedTimestampType) {
            return val -> {
                LocalDateTime utc = val instanceof LocalDateTime ? (LocalDateTime) val : ((Timestamp) val).toLocalDateTime();
                return TimestampData.fromInstant(utc.toInstant(ZoneOffset.UTC));
            };
        }
        return super.createInternalConverter(type);
    }

    @Override
    protected JdbcSerializationConverter createNullableExternalConverter(LogicalType type) {
        if (type instanceof LocalZonedTimestampType) {
            final int precision = ((LocalZonedTimestampType) type).getPrecision();
            return (row, index, statement) -> {
                if (row == null || row.isNullAt(index)) {
                    statement.setNull(index, Types.TIMESTAMP);
                } else {
                    // Timestamp.valueOf and the driver both use the JVM's zone: the UTC wall clock arrives unchanged.
                    LocalDateTime utc = LocalDateTime.ofInstant(row.getTimestamp(index, precision).toInstant(), ZoneOffset.UTC);
                    statement.setTimestamp(index, Timestamp.valueOf(utc));
                }
            };
        }
        return super.createNullableExternalConverter(type);
    }
}
