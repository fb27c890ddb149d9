package weir.flink.mysql;

import org.apache.flink.connector.jdbc.core.database.JdbcFactory;
import org.apache.flink.connector.jdbc.core.database.catalog.JdbcCatalog;
import org.apache.flink.connector.jdbc.core.database.dialect.JdbcDialect;

/**
 * Lets flink-connector-jdbc-core 4.0 (which ships no MySQL dialect) write to MySQL and MariaDB:
 * found through META-INF/services, chosen for every URL that starts with {@code jdbc:mysql:} or
 * {@code jdbc:mariadb:}. Weir's exported scripts use {@code jdbc:mysql://host:port/db}.
 */
public class WeirMySqlFactory implements JdbcFactory {
    @Override
    public boolean acceptsURL(String url) {
        return url.startsWith("jdbc:mysql:") || url.startsWith("jdbc:mariadb:");
    }

    @Override
    public JdbcDialect createDialect() {
        return new WeirMySqlDialect();
    }

    @Override
    public JdbcCatalog createCatalog(ClassLoader classLoader, String catalogName, String defaultDatabase,
                                     String username, String pwd, String baseUrl) {
        throw new UnsupportedOperationException("Weir's MySQL dialect has no catalog: declare the tables with CREATE TABLE");
    }
}
