use std::io::Write;

use serde_json::json;

use super::*;
use crate::config::{Column, TaskConfig};
use crate::tasks::{TaskKind, TaskSpec};

fn file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
    (dir, path)
}

fn task(kind: TaskKind) -> TaskConfig {
    TaskConfig::new("t", kind.name())
}

/// The model side of a test task (only its kind matters to the readers).
fn spec(task: &TaskConfig) -> TaskSpec {
    TaskSpec::new(&task.name, TaskKind::named(&task.kind.0).unwrap())
}

#[test]
fn jsonl_csv_tsv_conll_and_word_tag_agree_on_content() {
    let cls = task(TaskKind::CLASSIFICATION);
    let (_d, p) = file(
        "a.jsonl",
        b"{\"text\": \"good film\", \"label\": \"pos\"}\n\n{\"text\": \"a\", \"text_pair\": \"b\", \"label\": 1}\n",
    );
    let r = read_records(&spec(&cls), &cls.source(), &p).unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].line, r[0].text.as_str(), &r[0].label),
        (1, "good film", &json!("pos"))
    );
    assert_eq!((r[1].line, r[1].text_pair.as_deref()), (3, Some("b")));

    let (_d, p) = file(
        "a.csv",
        "\u{feff}text,label\n\"good, film\",pos\n,\n\"two\nlines\",neg\n".as_bytes(),
    );
    let r = read_records(&spec(&cls), &cls.source(), &p).unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].text.as_str(), &r[0].label, r[0].line),
        ("good, film", &json!("pos"), 2)
    );
    assert_eq!((r[1].text.as_str(), r[1].line), ("two\nlines", 4));

    let mut headerless = task(TaskKind::REGRESSION);
    headerless.header = Some(false);
    headerless.text_column = Some(Column::Index(2));
    headerless.label_column = Some(Column::Index(1));
    let (_d, p) = file("a.tsv", b"1\t2.5\tnice\n2\t-1\tbad\n");
    let r = read_records(&spec(&headerless), &headerless.source(), &p).unwrap();
    assert_eq!(
        (r[1].text.as_str(), &r[1].label, r[1].line),
        ("bad", &json!(-1.0), 2)
    );

    let tok = task(TaskKind::TOKEN_CLASSIFICATION);
    let (_d, p) = file(
        "a.conll",
        b"-DOCSTART- O\n\nEU NNP B-ORG\nrejects VBZ O\n\n\nPeter NNP B-PER\n",
    );
    let r = read_records(&spec(&tok), &tok.source(), &p).unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].text.as_str(), &r[0].label, r[0].line),
        ("EU rejects", &json!(["B-ORG", "O"]), 3)
    );
    let mut pos_column = tok.clone();
    pos_column.tag_column = Some(1);
    assert_eq!(
        read_records(&spec(&pos_column), &pos_column.source(), &p).unwrap()[0].label,
        json!(["NNP", "VBZ"])
    );

    let mut wt = tok.clone();
    wt.format = Some(DataFormat::WordTag);
    let (_d, p) = file("wsj.txt", b"Pierre/NNP 1/2/CD ./.\n\nOK/JJ\n");
    let r = read_records(&spec(&wt), &wt.source(), &p).unwrap();
    assert_eq!(
        (r[0].text.as_str(), &r[0].label),
        ("Pierre 1/2 .", &json!(["NNP", "CD", "."]))
    );
    assert_eq!(r[1].line, 3);
}

#[test]
fn bad_files_name_the_file_the_line_and_the_fix() {
    let cls = task(TaskKind::CLASSIFICATION);
    let tok = task(TaskKind::TOKEN_CLASSIFICATION);
    let reg = task(TaskKind::REGRESSION);
    let cases: Vec<(&TaskConfig, &str, &[u8], &str)> = vec![
        (&cls, "e.jsonl", b"", "no examples"),
        (
            &cls,
            "e.jsonl",
            b"{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": 3, \"label\": \"x\"}\n",
            ":2: \"text\" must be a string",
        ),
        (
            &cls,
            "e.jsonl",
            b"{\"text\": \"a\"}\n",
            ":1: missing \"label\"",
        ),
        (
            &cls,
            "e.jsonl",
            b"{\"text\": \"a\", \"label\": \"x\"}\n\xff\xfe\n",
            ":2: invalid UTF-8",
        ),
        (
            &cls,
            "e.csv",
            b"sentence,label\nhi,x\n",
            "no text column 'text' (the header has: sentence, label)",
        ),
        (&cls, "e.csv", b"text\nhi\n", "no label column 'label'"),
        (
            &reg,
            "e.csv",
            b"text,label\nhi,high\n",
            ":2: task 't': label 'high' is not a number",
        ),
        (
            &reg,
            "e.csv",
            b"text,label\nhi,1.5\nho,NaN\n",
            ":3: task 't': label 'NaN' is not a finite number",
        ),
        (
            &reg,
            "e.tsv",
            b"text\tlabel\nhi\t-inf\n",
            ":2: task 't': label '-inf' is not a finite number",
        ),
        (
            &tok,
            "e.conll",
            b"EU B-ORG\nrejects\n",
            ":2: expected a token and a tag",
        ),
        (&tok, "e.txt", b"a/DT\n", "set the task's `format`"),
        (&cls, "e.conll", b"a B\n", "use jsonl, csv or tsv"),
        (
            &tok,
            "e.csv",
            b"text,label\na,b\n",
            "use conll, word_tag or jsonl",
        ),
    ];
    for (task, name, bytes, expected) in cases {
        let (_d, p) = file(name, bytes);
        let err = read_records(&spec(task), &task.source(), &p)
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "expected '{expected}' in: {err}");
        assert!(err.contains(name), "names the file: {err}");
    }
    let mut wt = tok.clone();
    wt.format = Some(DataFormat::WordTag);
    let (_d, p) = file("w.txt", b"a/DT b\n");
    let err = read_records(&spec(&wt), &wt.source(), &p)
        .unwrap_err()
        .to_string();
    assert!(err.contains("w.txt:1: 'b' is not word/TAG"), "{err}");
}

/// Generation tasks read a `target` (JSONL key, CSV/TSV column or `target_column`); a
/// missing target or a `label` key instead is an error naming the line.
#[test]
fn generation_targets_come_from_target_fields_and_columns() {
    let generation = task(TaskKind::GENERATION);
    let (_d, p) = file(
        "g.jsonl",
        b"{\"text\": \"goose (noun)\", \"target\": \"geese\"}\n{\"text\": \"a\", \"target\": \"b c\"}\n",
    );
    let r = read_records(&spec(&generation), &generation.source(), &p).unwrap();
    assert_eq!(
        (r[0].text.as_str(), &r[0].label),
        ("goose (noun)", &json!("geese"))
    );
    let (_d, p) = file("g.jsonl", b"{\"text\": \"a\", \"label\": \"b\"}\n");
    let err = read_records(&spec(&generation), &generation.source(), &p)
        .unwrap_err()
        .to_string();
    assert!(err.contains(":1: unknown key \"label\""), "{err}");
    let (_d, p) = file("g.jsonl", b"{\"text\": \"a\"}\n");
    let err = read_records(&spec(&generation), &generation.source(), &p)
        .unwrap_err()
        .to_string();
    assert!(err.contains(":1: missing \"target\""), "{err}");

    let (_d, p) = file("g.csv", b"text,target\ngoose,geese\n");
    let r = read_records(&spec(&generation), &generation.source(), &p).unwrap();
    assert_eq!(&r[0].label, &json!("geese"));
    let mut named = task(TaskKind::GENERATION);
    named.target_column = Some(Column::Name("plural".into()));
    let (_d, p) = file("g.tsv", b"word\tplural\ngoose\tgeese\n");
    named.text_column = Some(Column::Name("word".into()));
    let r = read_records(&spec(&named), &named.source(), &p).unwrap();
    assert_eq!(
        (r[0].text.as_str(), &r[0].label),
        ("goose", &json!("geese"))
    );
    let (_d, p) = file("g.csv", b"text,label\ngoose,geese\n");
    let err = read_records(&spec(&generation), &generation.source(), &p)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no target column 'target'"), "{err}");
}
