package adloop.udf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.List;
import java.util.TreeSet;

import org.apache.flink.table.types.logical.ArrayType;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.table.types.logical.utils.LogicalTypeParser;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;

/** {@code ADLOOP_ARM_STATS}: the sums per (state, arm), their order, NULLs, context sums, merges. */
class ArmStatsTest {

    private final ArmStats stats = new ArmStats();

    @Test
    void sumsInitialAndDelayedRowsPerStateAndArm() {
        ArmStats.Acc acc = stats.createAccumulator();
        stats.accumulate(acc, "", "b", "initial", 1.0, 0.5, 0.2);
        stats.accumulate(acc, "", "b", "initial", -0.5, 0.25, 0.1);
        stats.accumulate(acc, "", "b", "delayed", 3.0, 0.5, 0.0);
        stats.accumulate(acc, "", "a", "initial", 0.0, 1.0, null);
        Row[] arms = stats.getValue(acc);
        assertEquals(2, arms.length);
        assertEquals("a", arms[0].getField("arm"), "sorted by (state, arm)");
        Row b = arms[1];
        assertEquals("", b.getField("state"));
        assertEquals(2.0, b.getField("trials"));
        assertEquals(2.0, b.getField("wins"));
        assertEquals(0.5, b.getField("reward_sum"));
        assertEquals(1.25, b.getField("reward_sq_sum"));
        assertEquals(3.0, b.getField("delayed_sum"));
        assertEquals(1.0 / 0.5 - 0.5 / 0.25 + 3.0 / 0.5, (double) b.getField("ipw_reward_sum"), 1e-12);
        assertEquals(0.3, (double) b.getField("cost_sum"), 1e-12);
        assertNull(b.getField("xx"));
        assertNull(b.getField("rx"));
    }

    @Test
    void requestsAndWinsAreTrialsWithTheirSpendAndValueRowsOnlyReward() {
        ArmStats.Acc acc = stats.createAccumulator();
        stats.accumulate(acc, "20000|5|s", "1.25", "won", null, 0.5, 0.4);
        stats.accumulate(acc, "20000|5|s", "1.25", "request", null, 0.5, 0.0);
        stats.accumulate(acc, "20000|5|s", "1.25", "request", null, 0.5, null);
        stats.accumulate(acc, "20000|5|s", "1.25", "value", 2.0, 0.5, null);
        stats.accumulate(acc, "20000|5|s", "1.25", "delayed", 0.5, 0.5, null);
        Row arm = stats.getValue(acc)[0];
        assertEquals(3.0, arm.getField("trials"), "every request, won or not");
        assertEquals(1.0, arm.getField("wins"));
        assertEquals(0.4, (double) arm.getField("cost_sum"), 1e-12);
        assertEquals(2.0, arm.getField("reward_sum"));
        assertEquals(4.0, arm.getField("reward_sq_sum"));
        assertEquals(0.5, arm.getField("delayed_sum"));
        assertEquals(2.0 / 0.5 + 0.5 / 0.5, (double) arm.getField("ipw_reward_sum"), 1e-12);
    }

    @Test
    void theOutputFieldsAreTheSharedSchemasInOrder() {
        ArmStats.Acc acc = stats.createAccumulator();
        stats.accumulate(acc, "3|s", "x", "initial", 1.0, 1.0, 0.0);
        Row arm = stats.getValue(acc)[0];
        ArrayType arms = (ArrayType) LogicalTypeParser.parse(Schemas.ARMS, getClass().getClassLoader());
        List<String> expected = ((RowType) arms.getElementType()).getFieldNames();
        assertEquals(new TreeSet<>(expected), new TreeSet<>(arm.getFieldNames(true)), "every field, set by name");
    }

    @Test
    void aNullNumberAddsNothingAndAnUnknownKindCountsOnlyItsCost() {
        ArmStats.Acc acc = stats.createAccumulator();
        stats.accumulate(acc, null, "a", "initial", null, null, null);
        stats.accumulate(acc, "", "a", "other", 5.0, null, 1.5);
        Row a = stats.getValue(acc)[0];
        assertEquals(1.0, a.getField("trials"));
        assertEquals(0.0, a.getField("reward_sum"));
        assertEquals(0.0, a.getField("delayed_sum"));
        assertEquals(0.0, a.getField("ipw_reward_sum"));
        assertEquals(1.5, a.getField("cost_sum"));
    }

    @Test
    void contextSumsUseTheFirstDFeaturesAndZeroForMissingOnes() {
        ArmStats.Acc acc = stats.createAccumulator();
        stats.accumulate(acc, "", "a", "initial", 2.0, 1.0, 0.0, new Double[] {1.0, 3.0, 99.0}, 2);
        stats.accumulate(acc, "", "a", "initial", 1.0, 1.0, 0.0, new Double[] {2.0}, 2);
        stats.accumulate(acc, "", "a", "delayed", 1.0, 1.0, 0.0, new Double[] {1.0, 1.0}, 2);
        Row a = stats.getValue(acc)[0];
        // xx over the initial rows: [1,3]ᵀ[1,3] + [2,0]ᵀ[2,0]
        assertArrayEquals(new Double[] {5.0, 3.0, 3.0, 9.0}, (Double[]) a.getField("xx"));
        // rx over all rows: 2*[1,3] + 1*[2,0] + 1*[1,1]
        assertArrayEquals(new Double[] {5.0, 7.0}, (Double[]) a.getField("rx"));
    }

    @Test
    void mergingEqualsAccumulatingEverythingInOne() {
        ArmStats.Acc one = stats.createAccumulator();
        ArmStats.Acc left = stats.createAccumulator();
        ArmStats.Acc right = stats.createAccumulator();
        Object[][] rows = {
            {"", "a", "initial", 1.0, 0.5, 0.1, new Double[] {1.0}, 1},
            {"", "b", "initial", 0.0, 0.5, 0.1, null, 0},
            {"", "a", "delayed", 2.0, 0.5, 0.0, new Double[] {2.0}, 1},
        };
        for (int i = 0; i < rows.length; i++) {
            Object[] r = rows[i];
            for (ArmStats.Acc acc : new ArmStats.Acc[] {one, i == 0 ? left : right}) {
                stats.accumulate(acc, (String) r[0], (String) r[1], (String) r[2], (Double) r[3], (Double) r[4],
                        (Double) r[5], (Double[]) r[6], (Integer) r[7]);
            }
        }
        stats.merge(left, List.of(right));
        assertEquals(List.of(stats.getValue(one)), List.of(stats.getValue(left)));
        stats.resetAccumulator(left);
        assertEquals(0, stats.getValue(left).length);
    }
}
