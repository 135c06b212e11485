import java.sql.*;

/** fnwatch server through pgjdbc: metadata calls and queries a JDBC client makes. */
public class JdbcCheck {
    public static void main(String[] a) throws Exception {
        try (Connection c = DriverManager.getConnection(a[0], a[1], a[2])) {
            DatabaseMetaData md = c.getMetaData();
            System.out.println("product " + md.getDatabaseProductName() + " " + md.getDatabaseProductVersion());
            try (ResultSet rs = md.getTables(null, null, "%", new String[] {"TABLE", "VIEW"})) {
                while (rs.next()) {
                    System.out.println("table " + rs.getString("TABLE_NAME") + " " + rs.getString("TABLE_TYPE"));
                }
            }
            try (ResultSet rs = md.getColumns(null, null, "events", "%")) {
                while (rs.next()) {
                    System.out.println("column events." + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME"));
                }
            }
            try (Statement s = c.createStatement();
                 ResultSet rs = s.executeQuery("SELECT count(*) FROM events")) {
                rs.next();
                System.out.println("count " + rs.getLong(1));
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM dns WHERE function = ?")) {
                ps.setString(1, a[3]);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    System.out.println("prepared " + rs.getLong(1));
                }
            }
            try (Statement s = c.createStatement();
                 ResultSet rs = s.executeQuery("SELECT function, max(time) FROM invocations GROUP BY function ORDER BY function LIMIT 1")) {
                rs.next();
                System.out.println("row " + rs.getString(1) + " " + rs.getTimestamp(2));
            }
        }
    }
}
