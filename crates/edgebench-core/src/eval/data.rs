//! Eval datasets: where they are (`--data-dir`, the data cache, or a download from their
//! published source), and loaders that read them into items.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why a dataset is unusable.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{dataset}: {path} is missing (put the files there, or pass --data-dir DIR with {dataset}/ inside; see SOURCE notes in the README)")]
    Missing { dataset: String, path: PathBuf },
    #[error("{dataset}: cannot download {url}: {reason}. edgebench looks for the files in {dir}; put them there (or pass --data-dir DIR holding {dataset}/) when this machine is offline")]
    Download {
        dataset: String,
        url: String,
        dir: PathBuf,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn parse(path: &Path, reason: impl std::fmt::Display) -> DataError {
    DataError::Parse {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// One file of a dataset and where it is published.
#[derive(Debug, Clone, Copy)]
pub struct Remote {
    pub file: &'static str,
    pub url: &'static str,
    /// SHA-256 of the file, when the source is pinned to a commit.
    pub sha256: Option<&'static str>,
}

/// The files each dataset needs, from their published sources pinned to a commit.
pub fn remotes(dataset: &str) -> &'static [Remote] {
    match dataset {
        "banking77" => &[
            Remote {
                file: "test.csv",
                url: "https://raw.githubusercontent.com/PolyAI-LDN/task-specific-datasets/57ec275d8078af65b7731c2a98be812d844a6d6b/banking_data/test.csv",
                sha256: Some("d12d6e3bc4c3103966ae786dc435913c0c563dfa328f5a3646d0e62cfeeb474d"),
            },
            Remote {
                file: "categories.json",
                url: "https://raw.githubusercontent.com/PolyAI-LDN/task-specific-datasets/57ec275d8078af65b7731c2a98be812d844a6d6b/banking_data/categories.json",
                sha256: Some("53261da888122daf2d120d925458631d9619e15d82e56052e7a42e535ce32b63"),
            },
        ],
        "gsm8k" => &[Remote {
            file: "test.jsonl",
            url: "https://raw.githubusercontent.com/openai/grade-school-math/3101c7d5072418e28b9008a6636bde82a006892c/grade_school_math/data/test.jsonl",
            sha256: Some("3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14"),
        }],
        "humaneval" => &[Remote {
            file: "HumanEval.jsonl.gz",
            url: "https://raw.githubusercontent.com/openai/human-eval/6d43fb980f9fee3c892a914eda09951f772ad10d/data/HumanEval.jsonl.gz",
            sha256: Some("b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef"),
        }],
        // Archives, unpacked after download (see `unpack`).
        "financial_phrasebank" => &[Remote {
            file: "FinancialPhraseBank-v1.0.zip",
            url: "https://huggingface.co/datasets/takala/financial_phrasebank/resolve/main/data/FinancialPhraseBank-v1.0.zip",
            sha256: None,
        }],
        "mmlu" => &[Remote {
            file: "data.tar",
            url: "https://people.eecs.berkeley.edu/~hendrycks/data.tar",
            sha256: None,
        }],
        _ => &[]
    }
}

/// The file that proves a dataset is in place.
fn marker(dataset: &str) -> &'static str {
    match dataset {
        "banking77" => "test.csv",
        "financial_phrasebank" => "Sentences_AllAgree.txt",
        "gsm8k" => "test.jsonl",
        "humaneval" => "HumanEval.jsonl.gz",
        "mmlu" => "test",
        _ => "",
    }
}

/// The data cache: `$EDGEBENCH_HOME/data`, default `~/.cache/edgebench/data`.
pub fn cache_dir() -> PathBuf {
    crate::catalog::home_dir().join("data")
}

/// The folder of `dataset`: under `--data-dir` when given (which must hold it), else in the data
/// cache, downloaded there on first use.
pub async fn locate(dataset: &str, data_dir: Option<&Path>) -> Result<PathBuf, DataError> {
    if let Some(d) = data_dir {
        let dir = d.join(dataset);
        let m = dir.join(marker(dataset));
        if !m.exists() {
            return Err(DataError::Missing {
                dataset: dataset.into(),
                path: m,
            });
        }
        return Ok(dir);
    }
    let dir = cache_dir().join(dataset);
    if dir.join(marker(dataset)).exists() {
        return Ok(dir);
    }
    download(dataset, &dir).await?;
    Ok(dir)
}

async fn download(dataset: &str, dir: &Path) -> Result<(), DataError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| DataError::Download {
            dataset: dataset.into(),
            url: String::new(),
            dir: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
    for r in remotes(dataset) {
        let fail = |reason: String| DataError::Download {
            dataset: dataset.into(),
            url: r.url.into(),
            dir: dir.to_path_buf(),
            reason,
        };
        let resp = client
            .get(r.url)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(format!("HTTP {}", resp.status())));
        }
        let bytes = resp.bytes().await.map_err(|e| fail(e.to_string()))?;
        if let Some(want) = r.sha256 {
            let got = hex::encode(Sha256::digest(&bytes));
            if got != want {
                return Err(fail(format!("SHA-256 {got}, expected {want}")));
            }
        }
        let path = dir.join(r.file);
        crate::results::atomic_write(&path, &bytes).map_err(io(&path))?;
        unpack(dataset, dir, &path)?;
    }
    Ok(())
}

/// Unpacks the archive sources into the layout the loaders read.
fn unpack(dataset: &str, dir: &Path, archive: &Path) -> Result<(), DataError> {
    match dataset {
        "financial_phrasebank" => {
            let f = std::fs::File::open(archive).map_err(io(archive))?;
            let mut z = zip::ZipArchive::new(f).map_err(|e| parse(archive, e))?;
            for i in 0..z.len() {
                let mut entry = z.by_index(i).map_err(|e| parse(archive, e))?;
                let name = entry.name().rsplit('/').next().unwrap_or("").to_string();
                if name.starts_with("Sentences_") && name.ends_with(".txt") {
                    let mut buf = Vec::new();
                    entry.read_to_end(&mut buf).map_err(io(archive))?;
                    let out = dir.join(&name);
                    crate::results::atomic_write(&out, &buf).map_err(io(&out))?;
                }
            }
        }
        "mmlu" => {
            let f = std::fs::File::open(archive).map_err(io(archive))?;
            let mut t = tar::Archive::new(f);
            for entry in t.entries().map_err(io(archive))? {
                let mut entry = entry.map_err(io(archive))?;
                let path = entry.path().map_err(io(archive))?.into_owned();
                let parts: Vec<String> = path
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                // data/{test,dev}/{subject}_{split}.csv
                if let [.., split, file] = parts.as_slice() {
                    if (split == "test" || split == "dev") && file.ends_with(".csv") {
                        let mut buf = Vec::new();
                        entry.read_to_end(&mut buf).map_err(io(archive))?;
                        let out = dir.join(split).join(file);
                        crate::results::atomic_write(&out, &buf).map_err(io(&out))?;
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// One labelled text (Banking77, Financial PhraseBank).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelledText {
    pub id: String,
    pub text: String,
    pub label: String,
}

/// Banking77's test split and its 77 labels (in the published order).
pub fn banking77(dir: &Path) -> Result<(Vec<LabelledText>, Vec<String>), DataError> {
    let cat_path = dir.join("categories.json");
    let labels: Vec<String> =
        serde_json::from_slice(&std::fs::read(&cat_path).map_err(io(&cat_path))?)
            .map_err(|e| parse(&cat_path, e))?;
    let path = dir.join("test.csv");
    let mut r = csv::Reader::from_path(&path).map_err(|e| parse(&path, e))?;
    let mut items = Vec::new();
    for (i, row) in r.records().enumerate() {
        let row = row.map_err(|e| parse(&path, e))?;
        let (Some(text), Some(label)) = (row.get(0), row.get(1)) else {
            return Err(parse(
                &path,
                format!("row {} has fewer than 2 columns", i + 2),
            ));
        };
        if !labels.iter().any(|l| l == label) {
            return Err(parse(
                &path,
                format!("row {}: unknown category {label:?}", i + 2),
            ));
        }
        items.push(LabelledText {
            id: format!("banking77/test/{i}"),
            text: text.to_string(),
            label: label.to_string(),
        });
    }
    Ok((items, labels))
}

/// Financial PhraseBank at an agreement level (`all`, `75`, `66`, `50`): `sentence@label`
/// lines in Latin-1.
pub fn financial_phrasebank(dir: &Path, agreement: &str) -> Result<Vec<LabelledText>, DataError> {
    let file = match agreement {
        "all" | "100" => "Sentences_AllAgree.txt",
        "75" => "Sentences_75Agree.txt",
        "66" => "Sentences_66Agree.txt",
        "50" => "Sentences_50Agree.txt",
        other => {
            return Err(parse(
                dir,
                format!("unknown agreement level {other:?} (all, 75, 66, 50)"),
            ))
        }
    };
    let path = dir.join(file);
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    // Latin-1: every byte is the code point of the same value.
    let text: String = bytes.iter().map(|&b| char::from(b)).collect();
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some((sentence, label)) = line.trim_end_matches('\r').rsplit_once('@') else {
            continue;
        };
        let label = label.trim();
        if !matches!(label, "positive" | "negative" | "neutral") {
            return Err(parse(&path, format!("line {}: label {label:?}", i + 1)));
        }
        items.push(LabelledText {
            id: format!("fpb/{agreement}/{i}"),
            text: sentence.trim().to_string(),
            label: label.to_string(),
        });
    }
    Ok(items)
}

/// A GSM8K problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MathProblem {
    pub id: String,
    pub question: String,
    pub answer: String,
}

/// GSM8K's test split.
pub fn gsm8k(dir: &Path) -> Result<Vec<MathProblem>, DataError> {
    gsm8k_split(dir, "test")
}

/// GSM8K's `split` ("test" or "train", whose first problems are the harness's few-shot examples).
pub fn gsm8k_split(dir: &Path, split: &str) -> Result<Vec<MathProblem>, DataError> {
    let path = dir.join(format!("{split}.jsonl"));
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    #[derive(Deserialize)]
    struct Row {
        question: String,
        answer: String,
    }
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            let r: Row = serde_json::from_str(l)
                .map_err(|e| parse(&path, format!("line {}: {e}", i + 1)))?;
            Ok(MathProblem {
                id: format!("gsm8k/{split}/{i}"),
                question: r.question,
                answer: r.answer,
            })
        })
        .collect()
}

/// A HumanEval problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeProblem {
    pub task_id: String,
    pub prompt: String,
    pub test: String,
    pub entry_point: String,
    pub canonical_solution: String,
}

/// HumanEval's 164 problems.
pub fn humaneval(dir: &Path) -> Result<Vec<CodeProblem>, DataError> {
    let path = dir.join("HumanEval.jsonl.gz");
    let f = std::fs::File::open(&path).map_err(io(&path))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(f)
        .read_to_string(&mut text)
        .map_err(io(&path))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| parse(&path, format!("line {}: {e}", i + 1)))
        })
        .collect()
}

/// An MMLU question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mcq {
    pub id: String,
    pub subject: String,
    pub question: String,
    pub choices: Vec<String>,
    /// Index of the right choice (0 = A).
    pub answer: usize,
}

fn read_mmlu_file(path: &Path, subject: &str, split: &str) -> Result<Vec<Mcq>, DataError> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .map_err(|e| parse(path, e))?;
    let mut out = Vec::new();
    for (i, row) in r.records().enumerate() {
        let row = row.map_err(|e| parse(path, e))?;
        if i == 0 && row.get(0) == Some("question") {
            continue; // the re-encoded layout's header
        }
        if row.len() < 6 {
            return Err(parse(
                path,
                format!("row {}: {} columns, expected 6", i + 1, row.len()),
            ));
        }
        let a = row.get(5).unwrap_or("").trim();
        let answer = match a {
            "A" | "B" | "C" | "D" => (a.as_bytes()[0] - b'A') as usize,
            n => n
                .parse::<usize>()
                .ok()
                .filter(|k| *k < 4)
                .ok_or_else(|| parse(path, format!("row {}: answer {n:?}", i + 1)))?,
        };
        out.push(Mcq {
            id: format!("mmlu/{split}/{subject}/{i}"),
            subject: subject.to_string(),
            question: row.get(0).unwrap_or("").to_string(),
            choices: (1..5)
                .map(|k| row.get(k).unwrap_or("").to_string())
                .collect(),
            answer,
        });
    }
    Ok(out)
}

/// MMLU's questions of one split (`test` or `dev`), by subject; accepts both the original
/// headerless files with letter answers and the re-encoded ones with a header and indices.
pub fn mmlu(dir: &Path, split: &str) -> Result<BTreeMap<String, Vec<Mcq>>, DataError> {
    let folder = dir.join(split);
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(&folder).map_err(io(&folder))?;
    for e in entries {
        let e = e.map_err(io(&folder))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let suffix = format!("_{split}.csv");
        if let Some(subject) = name.strip_suffix(&suffix) {
            out.insert(
                subject.to_string(),
                read_mmlu_file(&e.path(), subject, split)?,
            );
        }
    }
    if out.is_empty() {
        return Err(parse(&folder, format!("no *_{split}.csv files")));
    }
    Ok(out)
}

/// A seeded sample of `n` indices of `strata` (one stratum key per item), allocated to strata
/// in proportion to their size (largest remainders), at least one per stratum while `n` allows;
/// returned in ascending order. All items when `n` is `None` or not below the count.
pub fn stratified_sample(strata: &[String], n: Option<usize>, seed: u64) -> Vec<usize> {
    let total = strata.len();
    let Some(n) = n.filter(|&n| n < total) else {
        return (0..total).collect();
    };
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, s) in strata.iter().enumerate() {
        groups.entry(s.as_str()).or_default().push(i);
    }
    // Proportional quotas with largest remainders.
    let mut quotas: Vec<(&str, usize, f64)> = groups
        .iter()
        .map(|(k, v)| {
            let exact = n as f64 * v.len() as f64 / total as f64;
            (*k, exact.floor() as usize, exact - exact.floor())
        })
        .collect();
    let mut left = n - quotas.iter().map(|q| q.1).sum::<usize>();
    let mut order: Vec<usize> = (0..quotas.len()).collect();
    order.sort_by(|&a, &b| quotas[b].2.total_cmp(&quotas[a].2).then(a.cmp(&b)));
    for &k in &order {
        if left == 0 {
            break;
        }
        quotas[k].1 += 1;
        left -= 1;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n);
    for (key, quota, _) in quotas {
        let mut members = groups[key].clone();
        members.shuffle(&mut rng);
        out.extend(members.into_iter().take(quota));
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_samples_are_proportional_seeded_and_sorted() {
        let strata: Vec<String> = (0..100)
            .map(|i| if i < 70 { "a".into() } else { "b".into() })
            .collect();
        let s = stratified_sample(&strata, Some(10), 42);
        assert_eq!(s.len(), 10);
        assert_eq!(s.iter().filter(|&&i| i < 70).count(), 7);
        assert_eq!(s, stratified_sample(&strata, Some(10), 42));
        assert_ne!(s, stratified_sample(&strata, Some(10), 43));
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(stratified_sample(&strata, None, 1).len(), 100);
        assert_eq!(stratified_sample(&strata, Some(500), 1).len(), 100);
    }

    fn shared() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets")
    }

    #[test]
    fn the_shared_datasets_load_with_their_published_counts() {
        let d = shared();
        if !d.exists() {
            eprintln!("SKIPPED: {} not found", d.display());
            return;
        }
        let (b, labels) = banking77(&d.join("banking77")).unwrap();
        assert_eq!((b.len(), labels.len()), (3080, 77));
        let f = financial_phrasebank(&d.join("financial_phrasebank"), "all").unwrap();
        // 2,264 lines, one of them a stray "1" from a sentence broken across lines.
        assert_eq!(f.len(), 2263);
        assert_eq!(f.iter().filter(|x| x.label == "negative").count(), 303);
        assert_eq!(gsm8k(&d.join("gsm8k")).unwrap().len(), 1319);
        assert_eq!(humaneval(&d.join("humaneval")).unwrap().len(), 164);
        let test = mmlu(&d.join("mmlu"), "test").unwrap();
        assert_eq!(test.len(), 57);
        assert_eq!(test.values().map(Vec::len).sum::<usize>(), 14042);
        let dev = mmlu(&d.join("mmlu"), "dev").unwrap();
        assert!(dev.values().all(|v| v.len() == 5));
    }

    #[test]
    fn mmlu_reads_the_original_headerless_layout() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("test")).unwrap();
        std::fs::write(
            dir.path().join("test/astronomy_test.csv"),
            "\"What is 1+1?\",1,2,3,4,B\n",
        )
        .unwrap();
        let m = mmlu(dir.path(), "test").unwrap();
        assert_eq!(m["astronomy"][0].answer, 1);
    }
}
