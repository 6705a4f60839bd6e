//! Errors that stay one line: a [`Detailed`] error carries a one-line summary (with counts)
//! for the `error:` line and the full list behind it, which the command line prints only with
//! `--verbose`.

/// An error with a one-line summary and a list of details.
#[derive(Debug)]
pub struct Detailed {
    pub summary: String,
    pub details: Vec<String>,
}

impl std::fmt::Display for Detailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary)
    }
}

impl std::error::Error for Detailed {}

/// The details of the first [`Detailed`] error in `error`'s chain (none if there is none).
pub fn details(error: &anyhow::Error) -> Vec<String> {
    error
        .chain()
        .find_map(|e| e.downcast_ref::<Detailed>())
        .map(|d| d.details.clone())
        .unwrap_or_default()
}

/// `error` with its causes as one line; without `verbose`, a hint that `--verbose` lists the
/// details when there are some.
pub fn one_line(error: &anyhow::Error, verbose: bool) -> String {
    let text = format!("{error:#}");
    let mut line: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let n = details(error).len();
    if n > 0 && !verbose {
        line.push_str(&format!(" (--verbose lists all {n})"));
    }
    line
}

/// A [`Detailed`] error listing `items`: `summary` gets the first `shown` of them (and how
/// many more) for the one line; all of them are the details.
pub fn listed(
    items: Vec<String>,
    shown: usize,
    summary: impl FnOnce(&str) -> String,
) -> anyhow::Error {
    anyhow::Error::new(Detailed {
        summary: summary(&first_few(&items, shown)),
        details: items,
    })
}

/// A summary of `items` for one line: the first `shown`, then how many more.
pub fn first_few(items: &[String], shown: usize) -> String {
    if items.len() <= shown {
        items.join(", ")
    } else {
        format!(
            "{}, and {} more",
            items[..shown].join(", "),
            items.len() - shown
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detailed_errors_stay_on_one_line() {
        let err = anyhow::Error::new(Detailed {
            summary: "3 problems: a, b, and 1 more".into(),
            details: vec!["a".into(), "b".into(), "c".into()],
        })
        .context("cannot load x");
        assert_eq!(
            one_line(&err, false),
            "cannot load x: 3 problems: a, b, and 1 more (--verbose lists all 3)"
        );
        assert_eq!(details(&err), ["a", "b", "c"]);
        let multi = anyhow::anyhow!("first\n  second");
        assert_eq!(one_line(&multi, true), "first; second");
        assert_eq!(first_few(&["x".into(), "y".into()], 3), "x, y");
    }
}
