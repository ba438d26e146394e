package adloop.udf;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.functions.AggregateFunction;
import org.apache.flink.types.Row;

/**
 * {@code ADLOOP_ARM_STATS(state, arm, kind, reward, propensity, cost[, features, d])}: the learners'
 * sufficient statistics of every (state, arm) of a group, as one array (learners/batch.py,
 * {@code ArmStats}).
 *
 * <p>{@code kind} says what a row adds: {@code initial} a trial, a win and its reward (a reward row
 * of a won impression); {@code delayed} delayed credit; {@code value} reward only (the bid and
 * budget agents' clicks and credit, whose trials are their requests); {@code won} a trial and a
 * win, {@code request} a trial (an {@code ad.auctions} request, won or not, its cost the price
 * paid). Every kind adds its cost and {@code reward / propensity}.
 *
 * <p>Grouped by (micro-batch window, campaign, agent), it gives the learner of a key one row per
 * micro-batch, all its arms in it, so the Python operator is called once per key and window rather
 * than once per arm. The sums are those sql/batches.py once computed per arm in SQL: trials, the
 * initial rewards and their squares, delayed credit, {@code reward / propensity}, cost and wins
 * (one per initial or won row). With {@code d > 0} also
 * {@code Σ x xᵀ} over the initial rows (row-major) and {@code Σ r x} over all rows, {@code x}
 * being the first {@code d} features (missing ones count as 0); with {@code d = 0} both are NULL.
 * A NULL number adds nothing to its sums. Arms come out sorted by (state, arm), so the output does
 * not depend on arrival order. The output type is {@link Schemas#ARMS} (sql/schema.py,
 * {@code ARM_FIELDS}), and every field is set by its name.
 */
@FunctionHint(output = @DataTypeHint(Schemas.ARMS))
public class ArmStats extends AggregateFunction<Row[], ArmStats.Acc> {

    /** Positions of the scalar sums in an arm's vector; the context sums follow them. */
    private static final int TRIALS = 0;
    private static final int REWARD = 1;
    private static final int REWARD_SQ = 2;
    private static final int DELAYED = 3;
    private static final int IPW = 4;
    private static final int COST = 5;
    private static final int WINS = 6;
    private static final int SCALARS = 7;

    /** Separates state and arm in an accumulator key; neither holds control characters. */
    private static final char SEP = '\u001f';

    /** Sums by "state SEP arm"; {@code dim} is the context dimension of the group. */
    public static class Acc {
        public Map<String, double[]> arms = new HashMap<>();
        public int dim;
    }

    @Override
    public Acc createAccumulator() {
        return new Acc();
    }

    /**
     * Without context sums ({@code d = 0}): the features column is not read, so the planner drops
     * it from the rows shuffled to the aggregate, and no constant argument keeps a projection of
     * its own over the union of initial and delayed rewards.
     */
    public void accumulate(
            Acc acc, String state, String arm, String kind, Double reward, Double propensity, Double cost) {
        accumulate(acc, state, arm, kind, reward, propensity, cost, null, 0);
    }

    public void accumulate(
            Acc acc,
            String state,
            String arm,
            String kind,
            Double reward,
            Double propensity,
            Double cost,
            @DataTypeHint("ARRAY<DOUBLE>") Double[] features,
            Integer d) {
        int dim = d == null ? 0 : Math.max(d, 0);
        acc.dim = Math.max(acc.dim, dim);
        String key = (state == null ? "" : state) + SEP + arm;
        double[] sums = acc.arms.get(key);
        int size = SCALARS + dim * dim + dim;
        if (sums == null || sums.length < size) {
            sums = sums == null ? new double[size] : Arrays.copyOf(sums, size);
            acc.arms.put(key, sums);
        }
        boolean initial = "initial".equals(kind);
        double r = reward == null ? 0.0 : reward;
        if (initial) {
            sums[TRIALS] += 1.0;
            sums[WINS] += 1.0;
            sums[REWARD] += r;
            sums[REWARD_SQ] += r * r;
        } else if ("delayed".equals(kind)) {
            sums[DELAYED] += r;
        } else if ("value".equals(kind)) {
            sums[REWARD] += r;
            sums[REWARD_SQ] += r * r;
        } else if ("won".equals(kind)) {
            sums[TRIALS] += 1.0;
            sums[WINS] += 1.0;
        } else if ("request".equals(kind)) {
            sums[TRIALS] += 1.0;
        }
        if (reward != null && propensity != null) {
            sums[IPW] += reward / propensity;
        }
        if (cost != null) {
            sums[COST] += cost;
        }
        if (dim > 0 && features != null) {
            int rx = SCALARS + dim * dim;
            for (int i = 0; i < dim; i++) {
                double xi = feature(features, i);
                if (initial) {
                    for (int j = 0; j < dim; j++) {
                        sums[SCALARS + i * dim + j] += xi * feature(features, j);
                    }
                }
                sums[rx + i] += r * xi;
            }
        }
    }

    private static double feature(Double[] features, int i) {
        return i < features.length && features[i] != null ? features[i] : 0.0;
    }

    public void merge(Acc acc, Iterable<Acc> others) {
        for (Acc other : others) {
            acc.dim = Math.max(acc.dim, other.dim);
            for (Map.Entry<String, double[]> e : other.arms.entrySet()) {
                double[] mine = acc.arms.get(e.getKey());
                double[] theirs = e.getValue();
                if (mine == null) {
                    acc.arms.put(e.getKey(), theirs.clone());
                } else if (mine.length >= theirs.length) {
                    add(mine, theirs);
                } else {
                    double[] grown = theirs.clone();
                    add(grown, mine);
                    acc.arms.put(e.getKey(), grown);
                }
            }
        }
    }

    private static void add(double[] into, double[] from) {
        for (int i = 0; i < from.length; i++) {
            into[i] += from[i];
        }
    }

    public void resetAccumulator(Acc acc) {
        acc.arms.clear();
        acc.dim = 0;
    }

    @Override
    public Row[] getValue(Acc acc) {
        List<String> keys = new ArrayList<>(acc.arms.keySet());
        keys.sort(null);
        int dim = acc.dim;
        Row[] out = new Row[keys.size()];
        for (int k = 0; k < keys.size(); k++) {
            String key = keys.get(k);
            int sep = key.indexOf(SEP);
            double[] sums = acc.arms.get(key);
            Double[] xx = null;
            Double[] rx = null;
            if (dim > 0) {
                xx = new Double[dim * dim];
                rx = new Double[dim];
                for (int i = 0; i < dim * dim; i++) {
                    xx[i] = at(sums, SCALARS + i);
                }
                for (int i = 0; i < dim; i++) {
                    rx[i] = at(sums, SCALARS + dim * dim + i);
                }
            }
            Row arm = Row.withNames();
            arm.setField("state", key.substring(0, sep));
            arm.setField("arm", key.substring(sep + 1));
            arm.setField("trials", sums[TRIALS]);
            arm.setField("reward_sum", sums[REWARD]);
            arm.setField("reward_sq_sum", sums[REWARD_SQ]);
            arm.setField("delayed_sum", sums[DELAYED]);
            arm.setField("ipw_reward_sum", sums[IPW]);
            arm.setField("cost_sum", sums[COST]);
            arm.setField("wins", sums[WINS]);
            arm.setField("xx", xx);
            arm.setField("rx", rx);
            out[k] = arm;
        }
        return out;
    }

    private static double at(double[] sums, int i) {
        return i < sums.length ? sums[i] : 0.0;
    }
}
