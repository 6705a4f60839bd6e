//! Metrics for generated text, from (hypothesis, reference) string pairs: exact match, and
//! corpus BLEU and chrF computed exactly as sacrebleu 2.x computes them with its defaults
//! (pinned to sacrebleu 2.6.0 by tests/fixtures/generation_metrics/), one reference per
//! hypothesis.
//!
//! - BLEU (`corpus_bleu(hyps, [refs])`): each segment is right-stripped and tokenized with the
//!   13a tokenizer (mteval-v13a, [`tokenize_13a`]); clipped n-gram counts for n = 1..4 and the
//!   lengths are summed over the corpus, then the "exp" smoothing (the k-th order with no
//!   match counts as 1 / (2^k total)), no effective order, the brevity penalty, and
//!   100 * exp(mean log precision). Orders beyond the longest hypothesis have precision 0, so
//!   a corpus whose hypotheses all have fewer than 4 tokens scores 0, even when identical.
//! - chrF (`corpus_chrf(hyps, [refs])`): whitespace removed, character n-grams for
//!   n = 1..6, (hypothesis, reference, match) counts summed over the corpus; precision and
//!   recall of each order with counts on both sides are averaged over those orders, then
//!   F-beta with beta = 2, times 100. An order the reference is too short for counts no
//!   hypothesis n-grams for that segment (sacrebleu's rule).
//!
//! "Whitespace" is Python's (`str.isspace`: Unicode White_Space plus U+001C..U+001F), as
//! sacrebleu splits and strips with it. Characters are Unicode scalar values (Python's code
//! points), with no normalization. sacrebleu refuses an empty corpus; here it scores 0.

use std::collections::HashMap;
use std::hash::Hash;

use super::Metrics;

/// BLEU's maximum n-gram order.
const BLEU_ORDER: usize = 4;
/// chrF's character n-gram order.
const CHRF_ORDER: usize = 6;
/// chrF's beta (recall weighs beta times as much as precision).
const CHRF_BETA: f64 = 2.0;

/// `exact_match`, `bleu` and `chrf` of (hypothesis, reference) pairs: exact match as a
/// fraction (0-1), BLEU and chrF on sacrebleu's 0-100 scale.
pub fn generation_metrics(pairs: &[(String, String)]) -> Metrics {
    let mut m = Metrics::default();
    m.insert("exact_match", exact_match(pairs));
    m.insert("bleu", corpus_bleu(pairs));
    m.insert("chrf", corpus_chrf(pairs));
    m
}

/// Python's `str.isspace`: Unicode White_Space plus the separators U+001C..U+001F.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `s.split()`: the runs of non-whitespace.
fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_space).filter(|w| !w.is_empty())
}

/// Fraction of pairs whose hypothesis equals its reference once surrounding whitespace is
/// trimmed (0 for no pairs).
pub fn exact_match(pairs: &[(String, String)]) -> f64 {
    if pairs.is_empty() {
        return 0.0;
    }
    let same = pairs
        .iter()
        .filter(|(h, r)| h.trim_matches(is_py_space) == r.trim_matches(is_py_space))
        .count();
    same as f64 / pairs.len() as f64
}

// ---------------------------------------------------------------------------------------
// The 13a tokenizer
// ---------------------------------------------------------------------------------------

/// The first 13a rule's class `[\{-\~\[-\` -\&\(-\+\:-\@\/]`: ASCII punctuation (and the
/// space) except `'`, `,`, `-` and `.`.
fn is_13a_symbol(c: char) -> bool {
    matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/')
}

fn is_period_or_comma(c: char) -> bool {
    c == '.' || c == ','
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit()
}

/// `re.sub` of a two-character pattern `(first)(second)`: matches are found left to right
/// and never overlap (scanning resumes after each match), each replaced by `replace(a, b)`.
fn sub_pairs(
    text: &[char],
    first: fn(char) -> bool,
    second: fn(char) -> bool,
    replace: fn(char, char) -> [char; 4],
) -> Vec<char> {
    let mut out = Vec::with_capacity(text.len() * 2);
    let mut i = 0;
    while i < text.len() {
        if i + 1 < text.len() && first(text[i]) && second(text[i + 1]) {
            out.extend(replace(text[i], text[i + 1]));
            i += 2;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

/// sacrebleu's `Tokenizer13a` (mteval-v13a's tokenization): drops `<skipped>` and `-\n`,
/// turns newlines into spaces, unescapes `&quot;`, `&amp;`, `&lt;` and `&gt;` (in that order,
/// each once), then applies `TokenizerRegexp`'s rules in order and joins the words with
/// single spaces:
/// 1. `([\{-\~\[-\` -\&\(-\+\:-\@\/])` -> ` \1 ` (punctuation except `'`, `,`, `-`, `.`);
/// 2. `([^0-9])([\.,])` -> `\1 \2 ` (period and comma unless preceded by a digit);
/// 3. `([\.,])([^0-9])` -> ` \1 \2` (period and comma unless followed by a digit);
/// 4. `([0-9])(-)` -> `\1 \2 ` (a dash after a digit).
pub fn tokenize_13a(line: &str) -> String {
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let padded: Vec<char> = format!(" {line} ").chars().collect();

    let mut text = Vec::with_capacity(padded.len() * 2);
    for c in padded {
        if is_13a_symbol(c) {
            text.extend([' ', c, ' ']);
        } else {
            text.push(c);
        }
    }
    let text = sub_pairs(
        &text,
        |c| !is_digit(c),
        is_period_or_comma,
        |a, b| [a, ' ', b, ' '],
    );
    let text = sub_pairs(
        &text,
        is_period_or_comma,
        |c| !is_digit(c),
        |a, b| [' ', a, ' ', b],
    );
    let text = sub_pairs(&text, is_digit, |c| c == '-', |a, b| [a, ' ', b, ' ']);

    let text: String = text.into_iter().collect();
    py_split(&text).collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------
// BLEU
// ---------------------------------------------------------------------------------------

/// BLEU's sufficient statistics, summed over a corpus.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BleuStats {
    /// Clipped n-gram matches, n = 1..4.
    pub correct: [usize; BLEU_ORDER],
    /// Hypothesis n-grams, n = 1..4.
    pub total: [usize; BLEU_ORDER],
    /// Hypothesis tokens.
    pub sys_len: usize,
    /// Reference tokens.
    pub ref_len: usize,
}

/// Counts of the n-grams (as slices) of `items`.
fn ngram_counts<T: Eq + Hash>(items: &[T], n: usize) -> HashMap<&[T], usize> {
    let mut counts = HashMap::new();
    if items.len() >= n {
        for gram in items.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

/// (n-grams of the hypothesis, of those found in the reference, clipped to the reference's
/// count).
fn clipped_matches<T: Eq + Hash>(
    hyp: &HashMap<&[T], usize>,
    reference: &HashMap<&[T], usize>,
) -> (usize, usize) {
    let mut total = 0;
    let mut matched = 0;
    for (gram, &count) in hyp {
        total += count;
        if let Some(&in_ref) = reference.get(gram) {
            matched += count.min(in_ref);
        }
    }
    (total, matched)
}

/// The summed BLEU statistics of the pairs (each side right-stripped, then 13a-tokenized).
pub fn bleu_stats(pairs: &[(String, String)]) -> BleuStats {
    let mut stats = BleuStats::default();
    for (hyp, reference) in pairs {
        let hyp = tokenize_13a(hyp.trim_end_matches(is_py_space));
        let reference = tokenize_13a(reference.trim_end_matches(is_py_space));
        let hyp: Vec<&str> = py_split(&hyp).collect();
        let reference: Vec<&str> = py_split(&reference).collect();
        stats.sys_len += hyp.len();
        stats.ref_len += reference.len();
        for n in 1..=BLEU_ORDER {
            let (total, matched) =
                clipped_matches(&ngram_counts(&hyp, n), &ngram_counts(&reference, n));
            stats.total[n - 1] += total;
            stats.correct[n - 1] += matched;
        }
    }
    stats
}

/// sacrebleu's `my_log`: ln, with ln 0 floored to -9999999999.
fn floored_ln(x: f64) -> f64 {
    if x == 0.0 { -9_999_999_999.0 } else { x.ln() }
}

/// sacrebleu's `BLEU.compute_bleu` with `smooth_method="exp"` and no effective order, 0-100.
pub fn bleu_from_stats(stats: &BleuStats) -> f64 {
    let (sys_len, ref_len) = (stats.sys_len as f64, stats.ref_len as f64);
    let bp = if stats.sys_len >= stats.ref_len {
        1.0
    } else if stats.sys_len > 0 {
        (1.0 - ref_len / sys_len).exp()
    } else {
        0.0
    };
    if stats.correct.iter().all(|&c| c == 0) {
        return 0.0;
    }
    let mut precisions = [0.0; BLEU_ORDER];
    let mut smooth = 1.0;
    let orders = stats.correct.iter().zip(&stats.total).zip(&mut precisions);
    for ((&correct, &total), precision) in orders {
        if total == 0 {
            break; // this and higher orders keep precision 0
        }
        *precision = if correct == 0 {
            smooth *= 2.0;
            100.0 / (smooth * total as f64)
        } else {
            100.0 * correct as f64 / total as f64
        };
    }
    let log_sum = precisions.iter().fold(0.0, |s, &p| s + floored_ln(p));
    bp * (log_sum / BLEU_ORDER as f64).exp()
}

/// Corpus BLEU of (hypothesis, reference) pairs as sacrebleu's `corpus_bleu(hyps, [refs])`
/// prints it (0-100).
pub fn corpus_bleu(pairs: &[(String, String)]) -> f64 {
    bleu_from_stats(&bleu_stats(pairs))
}

// ---------------------------------------------------------------------------------------
// chrF
// ---------------------------------------------------------------------------------------

/// chrF's statistics per character order n = 1..6, summed over a corpus:
/// (hypothesis n-grams, reference n-grams, matches).
pub type ChrfStats = [(usize, usize, usize); CHRF_ORDER];

/// The summed chrF statistics of the pairs (whitespace removed from both sides).
pub fn chrf_stats(pairs: &[(String, String)]) -> ChrfStats {
    let mut stats = [(0, 0, 0); CHRF_ORDER];
    for (hyp, reference) in pairs {
        let hyp: Vec<char> = py_split(hyp).flat_map(str::chars).collect();
        let reference: Vec<char> = py_split(reference).flat_map(str::chars).collect();
        for (n, order) in (1..=CHRF_ORDER).zip(stats.iter_mut()) {
            let ref_grams = ngram_counts(&reference, n);
            let (hyp_total, matched) = clipped_matches(&ngram_counts(&hyp, n), &ref_grams);
            // sacrebleu counts no hypothesis n-grams where the reference has none.
            order.0 += if ref_grams.is_empty() { 0 } else { hyp_total };
            order.1 += ref_grams.values().sum::<usize>();
            order.2 += matched;
        }
    }
    stats
}

/// sacrebleu's `CHRF._compute_f_score` without eps smoothing: precision and recall averaged
/// over the orders with hypothesis and reference n-grams, then F-beta, 0-100.
pub fn chrf_from_stats(stats: &ChrfStats) -> f64 {
    let (mut avg_prec, mut avg_rec, mut orders) = (0.0, 0.0, 0usize);
    for &(hyp, reference, matched) in stats {
        if hyp > 0 && reference > 0 {
            avg_prec += matched as f64 / hyp as f64;
            avg_rec += matched as f64 / reference as f64;
            orders += 1;
        }
    }
    if orders == 0 {
        return 0.0;
    }
    avg_prec /= orders as f64;
    avg_rec /= orders as f64;
    if avg_prec + avg_rec == 0.0 {
        return 0.0;
    }
    let factor = CHRF_BETA * CHRF_BETA;
    let score = (1.0 + factor) * avg_prec * avg_rec / (factor * avg_prec + avg_rec);
    100.0 * score
}

/// Corpus chrF of (hypothesis, reference) pairs as sacrebleu's `corpus_chrf(hyps, [refs])`
/// prints it (0-100).
pub fn corpus_chrf(pairs: &[(String, String)]) -> f64 {
    chrf_from_stats(&chrf_stats(pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::Value;

    const FIXTURE: &str = include_str!("../../tests/fixtures/generation_metrics/sacrebleu.json");

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(h, r)| (h.to_string(), r.to_string()))
            .collect()
    }

    fn fixture() -> Value {
        serde_json::from_str(FIXTURE).unwrap()
    }

    fn counts(v: &Value) -> Vec<usize> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect()
    }

    #[test]
    fn scores_match_sacrebleu() {
        let fixture = fixture();
        assert!(
            fixture["sacrebleu_version"]
                .as_str()
                .unwrap()
                .starts_with("2.")
        );
        let cases = fixture["cases"].as_array().unwrap();
        assert!(cases.len() >= 30);
        let mut worst: f64 = 0.0;
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let pairs: Vec<(String, String)> = case["pairs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let side = |i: usize| p[i].as_str().unwrap().to_string();
                    (side(0), side(1))
                })
                .collect();

            let stats = bleu_stats(&pairs);
            assert_eq!(
                stats.correct.to_vec(),
                counts(&case["bleu_counts"]),
                "{name}"
            );
            assert_eq!(stats.total.to_vec(), counts(&case["bleu_totals"]), "{name}");
            assert_eq!(
                stats.sys_len as u64,
                case["sys_len"].as_u64().unwrap(),
                "{name}"
            );
            assert_eq!(
                stats.ref_len as u64,
                case["ref_len"].as_u64().unwrap(),
                "{name}"
            );

            let got = generation_metrics(&pairs);
            for key in ["bleu", "chrf", "exact_match"] {
                let want = case[key].as_f64().unwrap();
                let diff = (got.get(key).unwrap() - want).abs();
                worst = worst.max(diff);
                assert!(
                    diff <= 1e-9,
                    "{name} {key}: {} vs sacrebleu {want}",
                    got.get(key).unwrap()
                );
            }
        }
        eprintln!("largest deviation from sacrebleu: {worst:e}");
    }

    #[test]
    fn tokenization_matches_sacrebleu() {
        let fixture = fixture();
        let strings = fixture["tokenize_13a"].as_array().unwrap();
        assert!(!strings.is_empty());
        for pair in strings {
            let (line, want) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
            assert_eq!(tokenize_13a(line), want, "tokenizing {line:?}");
        }
    }

    #[test]
    fn tokenizer_by_hand() {
        assert_eq!(tokenize_13a("Hello, world!"), "Hello , world !");
        assert_eq!(tokenize_13a("pi is 3.14, 1,000."), "pi is 3.14 , 1,000 .");
        assert_eq!(tokenize_13a("10-20 well-known"), "10 - 20 well-known");
        assert_eq!(tokenize_13a("&quot;a&quot; &amp; b"), "\" a \" & b");
        assert_eq!(tokenize_13a("x<skipped>y-\nz\nw"), "xyz w");
        assert_eq!(tokenize_13a("  "), "");
    }

    #[test]
    fn identical_corpus_scores_100() {
        let p = pairs(&[
            ("the cat sat on the mat", "the cat sat on the mat"),
            ("a b c d e", "a b c d e"),
        ]);
        let m = generation_metrics(&p);
        assert_eq!(m.get("exact_match"), Some(1.0));
        assert!((m.get("bleu").unwrap() - 100.0).abs() < 1e-9);
        assert!((m.get("chrf").unwrap() - 100.0).abs() < 1e-9);
    }

    #[test]
    fn disjoint_corpus_scores_0() {
        let p = pairs(&[("alpha beta gamma delta", "one two three four")]);
        assert_eq!(exact_match(&p), 0.0);
        assert_eq!(corpus_bleu(&p), 0.0);
        // chrF needs disjoint characters, not just disjoint words.
        let p = pairs(&[("xyz xyz", "abc abc")]);
        assert_eq!(corpus_chrf(&p), 0.0);
    }

    #[test]
    fn bleu_by_hand() {
        // Unigrams 3/4, bigrams 1/3, trigrams 0/2 (smoothed to 1/(2*2)), 4-grams 0/1
        // (smoothed to 1/(4*1)); the hypothesis is as long as the reference.
        let p = pairs(&[("a b x d", "a b c d")]);
        let stats = bleu_stats(&p);
        assert_eq!(stats.correct, [3, 1, 0, 0]);
        assert_eq!(stats.total, [4, 3, 2, 1]);
        let want = (0.75_f64 * (1.0 / 3.0) * 0.25 * 0.25).powf(0.25) * 100.0;
        assert!((corpus_bleu(&p) - want).abs() < 1e-9);
        // Shorter hypothesis: brevity penalty exp(1 - 8/4).
        let p = pairs(&[("a b c d", "a b c d e f g h")]);
        assert!((corpus_bleu(&p) - 100.0 * (-1.0_f64).exp()).abs() < 1e-9);
    }

    #[test]
    fn chrf_by_hand() {
        // "ab" vs "abc" (whitespace ignored): unigrams P 2/2, R 2/3; bigrams P 1/1, R 1/2;
        // orders 3..6 have no hypothesis n-grams and are left out of the average.
        let p = pairs(&[("a b", "abc")]);
        let (prec, rec) = (1.0, (2.0 / 3.0 + 0.5) / 2.0);
        let want = 100.0 * 5.0 * prec * rec / (4.0 * prec + rec);
        assert!((corpus_chrf(&p) - want).abs() < 1e-9);
    }

    #[test]
    fn empty_inputs_score_0() {
        assert_eq!(generation_metrics(&[]).get("bleu"), Some(0.0));
        assert_eq!(generation_metrics(&[]).get("chrf"), Some(0.0));
        assert_eq!(exact_match(&[]), 0.0);
        let p = pairs(&[("", "")]);
        assert_eq!(exact_match(&p), 1.0);
        assert_eq!(corpus_bleu(&p), 0.0);
        assert_eq!(corpus_chrf(&p), 0.0);
    }

    #[test]
    fn exact_match_trims() {
        let p = pairs(&[(" geese\n", "geese"), ("goose", "geese"), ("a  b", "a b")]);
        assert!((exact_match(&p) - 1.0 / 3.0).abs() < 1e-15);
    }
}
