//! The `marquee` binary as a user runs it.

use crate::common::marquee_command as marquee;
use marquee::drawing::drawn_poster_jpeg;
use serde_json::Value;

#[test]
fn classify_jsonl_reports_each_file_and_goes_on_after_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a-poster.jpg"),
        drawn_poster_jpeg(3, 224, 320),
    )
    .unwrap();
    std::fs::write(dir.path().join("b-notes.txt"), "not an image").unwrap();
    let truncated = drawn_poster_jpeg(4, 224, 320);
    std::fs::write(
        dir.path().join("c-cut.jpg"),
        &truncated[..truncated.len() / 2],
    )
    .unwrap();
    std::fs::write(
        dir.path().join("d-poster.jpg"),
        drawn_poster_jpeg(5, 200, 300),
    )
    .unwrap();

    let out = marquee()
        .args(["classify", "--format", "jsonl"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "some files failed: exit 1");
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    for ok in [&lines[0], &lines[3]] {
        assert_eq!(ok["id"].as_str().unwrap().len(), 64);
        assert_eq!(ok["genres"].as_array().unwrap().len(), 19);
        assert_eq!(ok["top3"].as_array().unwrap().len(), 3);
        assert!(ok["tags"].is_array());
        assert!(ok["model"]
            .as_str()
            .unwrap()
            .starts_with("efficientnet-lite0"));
        assert!(ok["elapsed_ms"].as_f64().unwrap() > 0.0);
    }
    assert!(lines[1]["error"]
        .as_str()
        .unwrap()
        .contains("not a recognised image"));
    assert!(lines[2]["error"].as_str().unwrap().contains("truncated"));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("2 of 4 files could not be classified"),
        "{stderr}"
    );
}

#[test]
fn classify_table_on_a_single_file_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("poster.png");
    let img = marquee::drawing::drawn_poster(9, 224, 320);
    std::fs::write(
        &file,
        marquee::drawing::encode(&img, image::ImageFormat::Png),
    )
    .unwrap();
    let out = marquee().arg("classify").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("poster.png"), "{text}");
}

#[test]
fn eval_without_the_data_says_where_it_is_expected() {
    let out = marquee()
        .args([
            "eval",
            "--data",
            "/nonexistent/posters.csv",
            "--images",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("../shared/data"), "{stderr}");
}
