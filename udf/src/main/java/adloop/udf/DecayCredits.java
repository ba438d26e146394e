package adloop.udf;

/**
 * Time-decay credit: a conversion's value shared over its touches by weight {@code boost *
 * 2^(-age / half_life)}, normalised. The reference is {@code time_decay_credits} in
 * attribution/credit.py; a property test (tests/flink/test_decay_spec.py) checks the two agree on
 * random inputs.
 *
 * <p>Computed in log space, relative to the heaviest touch: the same ratios as the plain formula,
 * but no underflow to {@code 0 / 0} when every touch is many half-lives old (with
 * {@code Math.pow}, about 1,074 half-lives gave NaN).
 */
public final class DecayCredits {

    private DecayCredits() {}

    /**
     * The credit of each touch: {@code value * w_i / Σ w}.
     *
     * @param ages conversion time minus touch time, ms, each {@code >= 0}
     * @param clicks whether each touch is a click (weighted by {@code clickBoost}, {@code > 0})
     */
    public static double[] credits(
            double value, long[] ages, boolean[] clicks, long halfLifeMs, double clickBoost) {
        int n = ages.length;
        double[] logs = new double[n];
        double top = Double.NEGATIVE_INFINITY;
        double logBoost = Math.log(clickBoost) / Math.log(2.0);
        for (int i = 0; i < n; i++) {
            logs[i] = (clicks[i] ? logBoost : 0.0) - (double) ages[i] / halfLifeMs;
            top = Math.max(top, logs[i]);
        }
        double total = 0.0;
        for (int i = 0; i < n; i++) {
            logs[i] = Math.pow(2.0, logs[i] - top);
            total += logs[i];
        }
        for (int i = 0; i < n; i++) {
            logs[i] = value * logs[i] / total;
        }
        return logs;
    }
}
