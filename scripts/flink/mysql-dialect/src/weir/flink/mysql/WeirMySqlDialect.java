package weir.flink.mysql;

import org.apache.flink.connector.jdbc.core.database.dialect.AbstractDialect;
import org.apache.flink.connector.jdbc.core.database.dialect.JdbcDialectConverter;
import org.apache.flink.table.types.logical.LogicalTypeRoot;
import org.apache.flink.table.types.logical.RowType;

import java.util.Arrays;
import java.util.EnumSet;
import java.util.HashSet;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Collectors;

/** MySQL / MariaDB: backtick quoting, LIMIT, upserts as INSERT … ON DUPLICATE KEY UPDATE. */
public class WeirMySqlDialect extends AbstractDialect {
    private static final long serialVersionUID = 1L;

    @Override
    public String dialectName() {
        return "MySQL";
    }

    @Override
    public JdbcDialectConverter getRowConverter(RowType rowType) {
        return new WeirMySqlConverter(rowType);
    }

    @Override
    public Optional<String> defaultDriverName() {
        // MariaDB Connector/J (Debian's libmariadb-java) also takes jdbc:mysql: URLs.
        return Optional.of("org.mariadb.jdbc.Driver");
    }

    @Override
    public String quoteIdentifier(String identifier) {
        return "`" + identifier.replace("`", "``") + "`";
    }

    @Override
    public String getLimitClause(long limit) {
        return "LIMIT " + limit;
    }

    /** The key columns keep their values; every other column takes the new row's (all of them when every column is a key). */
    @Override
    public Optional<String> getUpsertStatement(String tableName, String[] fieldNames, String[] uniqueKeyFields) {
        Set<String> keys = new HashSet<>(Arrays.asList(uniqueKeyFields));
        String[] updated = Arrays.stream(fieldNames).filter(f -> !keys.contains(f)).toArray(String[]::new);
        if (updated.length == 0) {
            updated = fieldNames;
        }
        String assignments = Arrays.stream(updated)
                .map(f -> quoteIdentifier(f) + " = VALUES(" + quoteIdentifier(f) + ")")
                .collect(Collectors.joining(", "));
        return Optional.of(getInsertIntoStatement(tableName, fieldNames) + " ON DUPLICATE KEY UPDATE " + assignments);
    }

    /** Batches go to the server as multi-row statements. */
    @Override
    public String appendDefaultUrlProperties(String url) {
        if (url.contains("rewriteBatchedStatements")) {
            return url;
        }
        return url + (url.contains("?") ? "&" : "?") + "rewriteBatchedStatements=true";
    }

    @Override
    public Optional<Range> decimalPrecisionRange() {
        return Optional.of(Range.of(1, 65));
    }

    @Override
    public Optional<Range> timestampPrecisionRange() {
        return Optional.of(Range.of(0, 6));
    }

    @Override
    public Set<LogicalTypeRoot> supportedTypes() {
        return EnumSet.of(
                LogicalTypeRoot.CHAR,
                LogicalTypeRoot.VARCHAR,
                LogicalTypeRoot.BOOLEAN,
                LogicalTypeRoot.VARBINARY,
                LogicalTypeRoot.DECIMAL,
                LogicalTypeRoot.TINYINT,
                LogicalTypeRoot.SMALLINT,
                LogicalTypeRoot.INTEGER,
                LogicalTypeRoot.BIGINT,
                LogicalTypeRoot.FLOAT,
                LogicalTypeRoot.DOUBLE,
                LogicalTypeRoot.DATE,
                LogicalTypeRoot.TIME_WITHOUT_TIME_ZONE,
                LogicalTypeRoot.TIMESTAMP_WITHOUT_TIME_ZONE,
                LogicalTypeRoot.TIMESTAMP_WITH_LOCAL_TIME_ZONE);
    }
}
