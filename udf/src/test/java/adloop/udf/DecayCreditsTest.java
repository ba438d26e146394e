package adloop.udf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;

import org.junit.jupiter.api.Test;

/** {@link DecayCredits}: the formula, and no NaN however old the touches. */
class DecayCreditsTest {

    @Test
    void aViewNowAndAClickOneHalfLifeAgoWeighTheSameWithABoostOfTwo() {
        double[] got = DecayCredits.credits(10.0, new long[] {0, 7}, new boolean[] {false, true}, 7, 2.0);
        assertArrayEquals(new double[] {5.0, 5.0}, got, 1e-12);
    }

    @Test
    void touchesFarBeyondTheDoubleRangeOfThePlainFormulaStillShareTheValue() {
        // 2^-(2,000) underflows to 0: the plain formula gives 0/0.
        double[] got = DecayCredits.credits(3.0, new long[] {2_000, 2_001}, new boolean[] {false, false}, 1, 1.0);
        assertArrayEquals(new double[] {2.0, 1.0}, got, 1e-12);
    }

    @Test
    void creditsAreFiniteNonNegativeAndSumToTheValueOnRandomInputs() {
        Random random = new Random(7);
        for (int trial = 0; trial < 2_000; trial++) {
            int n = 1 + random.nextInt(20);
            long[] ages = new long[n];
            boolean[] clicks = new boolean[n];
            for (int i = 0; i < n; i++) {
                ages[i] = (long) (random.nextDouble() * 30 * 86_400_000L);
                clicks[i] = random.nextBoolean();
            }
            long halfLife = 1 + (long) (random.nextDouble() * 14 * 86_400_000L);
            double value = random.nextDouble() * 1_000;
            double[] got = DecayCredits.credits(value, ages, clicks, halfLife, 0.5 + random.nextDouble() * 4);
            double total = 0;
            for (double credit : got) {
                assertTrue(Double.isFinite(credit) && credit >= 0, "credit " + credit);
                total += credit;
            }
            assertEquals(value, total, 1e-9 * Math.max(1.0, value));
        }
    }
}
