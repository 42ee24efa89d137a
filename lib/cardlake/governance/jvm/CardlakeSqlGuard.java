package cardlake.sqlguard;

import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Hashtable;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import javax.naming.Context;
import javax.naming.NamingEnumeration;
import javax.naming.NamingException;
import javax.naming.directory.DirContext;
import javax.naming.directory.InitialDirContext;
import javax.naming.directory.SearchControls;
import javax.naming.directory.SearchResult;
import javax.naming.ldap.Rdn;

import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.catalyst.CurrentUserContext;
import org.apache.spark.sql.catalyst.analysis.AnalysisContext$;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.plans.logical.Command;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.plans.logical.View;
import org.apache.spark.sql.catalyst.rules.Rule;

import scala.runtime.AbstractFunction1;
import scala.runtime.BoxedUnit;

/**
 * Cardlake's guard for SQL users of the Thrift (JDBC) server, as a Spark session extension.
 *
 * <p>It checks every resolved plan run on behalf of a JDBC user (Spark sets the user of each
 * Thrift operation in {@link CurrentUserContext}; the server's own work has none and is not
 * checked). The user's LDAP groups give a role; a role may read the views of its schemas and
 * nothing else: no table below a view of another schema, no file path, no command that writes,
 * sets a configuration, adds a jar or creates a function, and no Java reflection.
 *
 * <p>Settings (static Spark conf): {@code spark.cardlake.sqlguard.ldap.url},
 * {@code ...ldap.userDnPattern} (e.g. {@code uid=%s,ou=people,dc=x}), {@code ...ldap.groupBase},
 * {@code ...roles} ({@code role=groupCn,...}, first match wins) and {@code ...schemas}
 * ({@code role=schema|schema;role=...}).
 */
public final class CardlakeSqlGuard extends AbstractFunction1<SparkSessionExtensions, BoxedUnit> {
    static final String PREFIX = "spark.cardlake.sqlguard.";
    static final long ROLE_CACHE_MS = 30_000L;

    /** Read-only commands a BI tool needs to browse the catalog; their children are not read. */
    static final Set<String> READ_ONLY_COMMANDS = new HashSet<>(Arrays.asList(
        "ShowTables", "ShowTablesCommand", "ShowNamespaces", "ShowColumns", "ShowColumnsCommand",
        "DescribeRelation", "DescribeTableCommand", "DescribeColumn", "DescribeColumnCommand",
        "DescribeNamespace", "ShowCurrentNamespaceCommand", "ShowCurrentNamespace",
        "SetCatalogAndNamespace", "SetNamespaceCommand", "ShowViews", "ShowTableProperties",
        "ShowTablePropertiesCommand", "ShowCatalogsCommand", "ShowCatalogs",
        "ShowFunctions", "ShowFunctionsCommand", "DescribeFunction", "DescribeFunctionCommand"));

    /** Leaves that read no stored data. */
    static final Set<String> HARMLESS_LEAVES = new HashSet<>(Arrays.asList(
        "LocalRelation", "OneRowRelation", "Range", "ResolvedNamespace", "EmptyRelation"));

    /** Expressions that reach the JVM or the host: reflection and Hive UDFs. (Scala and Python
     * UDFs stay allowed: SQL users cannot register one, and Delta's own reads use them.) */
    static final Set<String> FORBIDDEN_EXPRESSIONS = new HashSet<>(Arrays.asList(
        "CallMethodViaReflection", "TryReflect", "HiveSimpleUDF", "HiveGenericUDF",
        "HiveGenericUDTF", "HiveUDAFFunction"));

    static final Map<String, String[]> ROLE_CACHE = new ConcurrentHashMap<>();

    @Override
    public BoxedUnit apply(SparkSessionExtensions extensions) {
        // A post-hoc resolution rule, not a check rule: Spark 4.1 runs check rules on each view's
        // body on its own, outside the view's analysis context, where a view body cannot be told
        // from a user's query; this batch runs inside that context (nestedViewDepth > 0 for a
        // view's body), and once on the whole statement with its views resolved.
        extensions.injectPostHocResolutionRule(new AbstractFunction1<SparkSession, Rule<LogicalPlan>>() {
            @Override
            public Rule<LogicalPlan> apply(SparkSession session) {
                return new Rule<LogicalPlan>() {
                    @Override
                    public LogicalPlan apply(LogicalPlan plan) {
                        String user = CurrentUserContext.CURRENT_USER().get();
                        boolean inView = AnalysisContext$.MODULE$.get().nestedViewDepth() > 0;
                        // An unresolved plan never runs: Spark's own check refuses it next, with
                        // its own message (a file path with runSQLOnFiles off is one).
                        if (user != null && !inView && plan.resolved() && !insideEngine()) {
                            check(session, user, plan);
                        }
                        return plan;
                    }
                };
            }
        });
        return BoxedUnit.UNIT;
    }

    /** Packages of the table engine, whose own queries run on the user's thread. */
    static final String[] ENGINE_PACKAGES = {"org.apache.spark.sql.delta.", "io.delta."};

    static final StackWalker STACK = StackWalker.getInstance();

    /**
     * Whether this analysis was started by the table engine rather than by the statement.
     *
     * <p>Delta reads its log, checkpoints and file listings through Spark queries of its own,
     * on the thread of the statement that needs them (while the statement's tables resolve, and
     * again while it is planned); those plans carry the statement's user but are not the user's
     * text, and read the tables' folders directly. The statement's own plan is analysed from the
     * Thrift operation with no engine frame below it, and is always checked in full; an engine
     * query is one whose analysis runs inside the engine's code.
     */
    static boolean insideEngine() {
        return STACK.walk(frames -> frames.anyMatch(frame -> {
            String name = frame.getClassName();
            for (String prefix : ENGINE_PACKAGES) {
                if (name.startsWith(prefix)) {
                    return true;
                }
            }
            return false;
        }));
    }

    static RuntimeException refuse(String message) {
        // A plain exception: the Thrift server returns its message to the client as the error.
        return new SecurityException("cardlake sql guard: " + message);
    }

    static String conf(SparkSession session, String key) {
        String value = session.sparkContext().getConf().get(PREFIX + key, "");
        if (value.isEmpty()) {
            throw refuse("the server is not configured (" + PREFIX + key + " unset)");
        }
        return value;
    }

    static void check(SparkSession session, String user, LogicalPlan plan) {
        String role = role(session, user);
        if (role == null) {
            throw refuse("user " + user + " has no Cardlake role (member of no mapped group)");
        }
        Set<String> schemas = schemas(session).getOrDefault(role, new HashSet<>());
        walk(plan, role, schemas);
    }

    static void walk(LogicalPlan node, String role, Set<String> schemas) {
        String kind = node.getClass().getSimpleName();
        if (node instanceof View) {
            View view = (View) node;
            String db = view.desc().identifier().database().getOrElse(() -> "");
            if (view.isTempView() || !schemas.contains(db)) {
                throw refuse("role " + role + " may not read " + db + "." + view.desc().identifier().table()
                    + " (readable schemas: " + String.join(", ", new java.util.TreeSet<>(schemas)) + ")");
            }
            return;  // the server defined the view: what it reads below is its business
        }
        if (node instanceof Command) {
            if (READ_ONLY_COMMANDS.contains(kind)) {
                return;
            }
            throw refuse("SQL users may only read; " + kind + " is not allowed");
        }
        if (node.children().isEmpty() && !HARMLESS_LEAVES.contains(kind)) {
            throw refuse("role " + role + " may read only the views of "
                + String.join(", ", new java.util.TreeSet<>(schemas)) + ", not " + kind
                + " (tables and file paths are not readable directly)");
        }
        for (Expression expression : scala.jdk.javaapi.CollectionConverters.asJava(node.expressions())) {
            walkExpression(expression);
        }
        for (LogicalPlan sub : scala.jdk.javaapi.CollectionConverters.asJava(node.subqueries())) {
            walk(sub, role, schemas);
        }
        for (LogicalPlan child : scala.jdk.javaapi.CollectionConverters.asJava(node.children())) {
            walk(child, role, schemas);
        }
    }

    static void walkExpression(Expression expression) {
        String kind = expression.getClass().getSimpleName();
        if (FORBIDDEN_EXPRESSIONS.contains(kind)) {
            throw refuse("function " + expression.prettyName() + " is disabled for SQL users");
        }
        for (Expression child : scala.jdk.javaapi.CollectionConverters.asJava(expression.children())) {
            walkExpression(child);
        }
    }

    static Map<String, Set<String>> schemas(SparkSession session) {
        Map<String, Set<String>> out = new HashMap<>();
        for (String entry : conf(session, "schemas").split(";")) {
            String[] parts = entry.split("=", 2);
            if (parts.length == 2) {
                out.put(parts[0].trim(), new HashSet<>(Arrays.asList(parts[1].trim().split("\\|"))));
            }
        }
        return out;
    }

    /** The user's role from the directory's groups (first configured role whose group holds the user). */
    static String role(SparkSession session, String user) {
        long now = System.currentTimeMillis();
        String[] cached = ROLE_CACHE.get(user);
        if (cached != null && Long.parseLong(cached[0]) > now) {
            return cached[1].isEmpty() ? null : cached[1];
        }
        Map<String, String> roles = new LinkedHashMap<>();
        for (String entry : conf(session, "roles").split(",")) {
            String[] parts = entry.split("=", 2);
            if (parts.length == 2) {
                roles.put(parts[0].trim(), parts[1].trim());
            }
        }
        Set<String> groups = groupsOf(session, user);
        String found = null;
        for (Map.Entry<String, String> entry : roles.entrySet()) {
            if (groups.contains(entry.getValue())) {
                found = entry.getKey();
                break;
            }
        }
        ROLE_CACHE.put(user, new String[] {Long.toString(now + ROLE_CACHE_MS), found == null ? "" : found});
        return found;
    }

    static Set<String> groupsOf(SparkSession session, String user) {
        String userDn = String.format(conf(session, "ldap.userDnPattern"), Rdn.escapeValue(user));
        Hashtable<String, String> env = new Hashtable<>();
        env.put(Context.INITIAL_CONTEXT_FACTORY, "com.sun.jndi.ldap.LdapCtxFactory");
        env.put(Context.PROVIDER_URL, conf(session, "ldap.url"));
        env.put("com.sun.jndi.ldap.connect.timeout", "5000");
        env.put("com.sun.jndi.ldap.read.timeout", "5000");
        Set<String> groups = new HashSet<>();
        DirContext context = null;
        try {
            context = new InitialDirContext(env);
            SearchControls controls = new SearchControls();
            controls.setSearchScope(SearchControls.SUBTREE_SCOPE);
            controls.setReturningAttributes(new String[] {"cn"});
            NamingEnumeration<SearchResult> results = context.search(
                conf(session, "ldap.groupBase"),
                "(|(&(objectClass=groupOfNames)(member={0}))(&(objectClass=posixGroup)(memberUid={1})))",
                new Object[] {userDn, user}, controls);
            while (results.hasMore()) {
                Object cn = results.next().getAttributes().get("cn").get();
                groups.add(String.valueOf(cn));
            }
        } catch (NamingException e) {
            throw refuse("cannot read the groups of the user from the directory: " + e.getClass().getSimpleName());
        } finally {
            if (context != null) {
                try {
                    context.close();
                } catch (NamingException ignored) {
                    // closing a finished search: nothing to do
                }
            }
        }
        return groups;
    }
}
