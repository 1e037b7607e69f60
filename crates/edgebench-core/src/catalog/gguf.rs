//! A reader for GGUF model files' header: metadata and tensor shapes, without loading weights.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Why a GGUF file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("model file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model file {path} is not a GGUF file (bad magic)")]
    BadMagic { path: PathBuf },
    #[error("model file {path}: unsupported GGUF version {version}")]
    Version { path: PathBuf, version: u32 },
    #[error("model file {path} is corrupt or truncated: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// A metadata value. Arrays keep their length and, when short, their items.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Int(i64),
    Uint(u64),
    Float(f64),
    Bool(bool),
    Str(String),
    /// Arrays longer than [`MAX_KEPT_ARRAY`] keep only their length.
    Array {
        len: u64,
        items: Vec<Value>,
    },
}

/// Arrays up to this length keep their items; longer ones (vocabularies) only their length.
pub const MAX_KEPT_ARRAY: u64 = 64;

impl Value {
    /// The value as an unsigned integer, when it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Self::Uint(v) => Some(*v),
            Self::Int(v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }

    /// The value as a string, when it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// One tensor's name, shape and ggml type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: u32,
}

/// The header of a GGUF file.
#[derive(Debug, Clone, Serialize)]
pub struct GgufHeader {
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    pub file_size: u64,
}

impl GgufHeader {
    /// A metadata string.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }

    /// A metadata unsigned integer.
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.metadata.get(key).and_then(Value::as_u64)
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Option<&str> {
        self.str("general.architecture")
    }

    /// Parameters: the sum of every tensor's element count.
    pub fn parameter_count(&self) -> u64 {
        self.tensors
            .iter()
            .map(|t| t.dims.iter().product::<u64>())
            .sum()
    }

    /// The training context length (`{arch}.context_length`).
    pub fn context_length(&self) -> Option<u64> {
        self.architecture()
            .and_then(|a| self.u64(&format!("{a}.context_length")))
    }

    /// The quantization name from `general.file_type` (for example "Q4_1"), else the most
    /// common tensor type.
    pub fn quantization(&self) -> String {
        if let Some(name) = self.u64("general.file_type").and_then(file_type_name) {
            return name.to_string();
        }
        let mut counts: BTreeMap<u32, u64> = BTreeMap::new();
        for t in &self.tensors {
            *counts.entry(t.ggml_type).or_insert(0) += t.dims.iter().product::<u64>();
        }
        counts
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .and_then(|(ty, _)| ggml_type_name(ty))
            .unwrap_or("unknown")
            .to_string()
    }

    /// `general.license`, when present.
    pub fn license(&self) -> Option<&str> {
        self.str("general.license")
    }

    /// True when the file carries a chat template.
    pub fn has_chat_template(&self) -> bool {
        self.metadata.contains_key("tokenizer.chat_template")
    }

    /// Who published the model: `general.organization`, else the base model's organization,
    /// else `general.author`.
    pub fn publisher(&self) -> Option<&str> {
        self.str("general.organization")
            .or_else(|| self.str("general.base_model.0.organization"))
            .or_else(|| self.str("general.author"))
    }
}

/// The name of a llama.cpp `general.file_type` (llama_ftype) value.
pub fn file_type_name(ftype: u64) -> Option<&'static str> {
    Some(match ftype {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        _ => return None,
    })
}

/// The llama.cpp `llama_ftype` of a quantization name (`Q4_K_M` -> 15), case-insensitive.
pub fn file_type_code(name: &str) -> Option<u64> {
    let upper = name.to_ascii_uppercase();
    (0..=64).find(|&c| file_type_name(c) == Some(upper.as_str()))
}

/// The name of a ggml tensor type.
pub fn ggml_type_name(ty: u32) -> Option<&'static str> {
    Some(match ty {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        15 => "Q8_K",
        30 => "BF16",
        _ => return None,
    })
}

const MAGIC: &[u8; 4] = b"GGUF";
/// Sanity bounds that stop a corrupt header from asking for absurd allocations.
const MAX_STRING: u64 = 64 << 20;
const MAX_COUNT: u64 = 1 << 24;

struct Reader<R> {
    inner: R,
    path: PathBuf,
}

impl<R: Read + Seek> Reader<R> {
    fn corrupt(&self, reason: impl Into<String>) -> GgufError {
        GgufError::Corrupt {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let mut b = [0u8; N];
        self.inner.read_exact(&mut b).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.corrupt("unexpected end of file in the header")
            } else {
                GgufError::Io {
                    path: self.path.clone(),
                    source: e,
                }
            }
        })?;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    fn count(&mut self, what: &str) -> Result<u64, GgufError> {
        let n = self.u64()?;
        if n > MAX_COUNT {
            return Err(self.corrupt(format!("implausible {what} count {n}")));
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, GgufError> {
        let len = self.u64()?;
        if len > MAX_STRING {
            return Err(self.corrupt(format!("implausible string length {len}")));
        }
        let mut buf = vec![0u8; len as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|_| self.corrupt("unexpected end of file in a string"))?;
        String::from_utf8(buf).map_err(|_| self.corrupt("a string is not UTF-8"))
    }

    fn skip_string(&mut self) -> Result<(), GgufError> {
        let len = self.u64()?;
        if len > MAX_STRING {
            return Err(self.corrupt(format!("implausible string length {len}")));
        }
        self.inner
            .seek(SeekFrom::Current(len as i64))
            .map_err(|e| GgufError::Io {
                path: self.path.clone(),
                source: e,
            })?;
        Ok(())
    }

    fn value(&mut self, ty: u32, keep: bool) -> Result<Option<Value>, GgufError> {
        let v = match ty {
            0 => Value::Uint(u64::from(self.bytes::<1>()?[0])),
            1 => Value::Int(i64::from(i8::from_le_bytes(self.bytes()?))),
            2 => Value::Uint(u64::from(u16::from_le_bytes(self.bytes()?))),
            3 => Value::Int(i64::from(i16::from_le_bytes(self.bytes()?))),
            4 => Value::Uint(u64::from(self.u32()?)),
            5 => Value::Int(i64::from(i32::from_le_bytes(self.bytes()?))),
            6 => Value::Float(f64::from(f32::from_le_bytes(self.bytes()?))),
            7 => Value::Bool(self.bytes::<1>()?[0] != 0),
            8 if keep => Value::Str(self.string()?),
            8 => {
                self.skip_string()?;
                return Ok(None);
            }
            9 => {
                let item_ty = self.u32()?;
                let len = self.count("array")?;
                let keep_items = keep && len <= MAX_KEPT_ARRAY;
                let mut items = Vec::new();
                for _ in 0..len {
                    if let Some(v) = self.value(item_ty, keep_items)? {
                        items.push(v);
                    }
                }
                Value::Array { len, items }
            }
            10 => Value::Uint(self.u64()?),
            11 => Value::Int(i64::from_le_bytes(self.bytes()?)),
            12 => Value::Float(f64::from_le_bytes(self.bytes()?)),
            other => return Err(self.corrupt(format!("unknown value type {other}"))),
        };
        Ok(keep.then_some(v))
    }
}

/// Reads the header (metadata and tensor infos) of the GGUF file at `path`.
pub fn read_header(path: &Path) -> Result<GgufHeader, GgufError> {
    let io = |e| GgufError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let file = File::open(path).map_err(io)?;
    let file_size = file.metadata().map_err(io)?.len();
    let mut r = Reader {
        inner: BufReader::with_capacity(1 << 16, file),
        path: path.to_path_buf(),
    };
    let magic: [u8; 4] = r.bytes().map_err(|_| GgufError::BadMagic {
        path: path.to_path_buf(),
    })?;
    if &magic != MAGIC {
        return Err(GgufError::BadMagic {
            path: path.to_path_buf(),
        });
    }
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::Version {
            path: path.to_path_buf(),
            version,
        });
    }
    let n_tensors = r.count("tensor")?;
    let n_kv = r.count("metadata")?;
    let mut metadata = BTreeMap::new();
    for _ in 0..n_kv {
        let key = r.string()?;
        let ty = r.u32()?;
        if let Some(v) = r.value(ty, true)? {
            metadata.insert(key, v);
        }
    }
    let mut tensors = Vec::with_capacity(n_tensors as usize);
    for _ in 0..n_tensors {
        let name = r.string()?;
        let n_dims = r.u32()?;
        if n_dims > 8 {
            return Err(r.corrupt(format!("tensor {name} has {n_dims} dimensions")));
        }
        let dims = (0..n_dims)
            .map(|_| r.u64())
            .collect::<Result<Vec<_>, _>>()?;
        let ggml_type = r.u32()?;
        let offset = r.u64()?;
        if offset > file_size {
            return Err(r.corrupt(format!("tensor {name} starts beyond the end of the file")));
        }
        tensors.push(TensorInfo {
            name,
            dims,
            ggml_type,
        });
    }
    Ok(GgufHeader {
        version,
        metadata,
        tensors,
        file_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gguf_bytes(kvs: &[(&str, u32, Vec<u8>)], tensors: &[(&str, &[u64], u32)]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"GGUF");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        b.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
        let s = |b: &mut Vec<u8>, s: &str| {
            b.extend_from_slice(&(s.len() as u64).to_le_bytes());
            b.extend_from_slice(s.as_bytes());
        };
        for (k, ty, v) in kvs {
            s(&mut b, k);
            b.extend_from_slice(&ty.to_le_bytes());
            b.extend_from_slice(v);
        }
        for (name, dims, ty) in tensors {
            s(&mut b, name);
            b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in *dims {
                b.extend_from_slice(&d.to_le_bytes());
            }
            b.extend_from_slice(&ty.to_le_bytes());
            b.extend_from_slice(&0u64.to_le_bytes());
        }
        b
    }

    fn str_val(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn write(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn reads_metadata_and_counts_parameters() {
        let bytes = gguf_bytes(
            &[
                ("general.architecture", 8, str_val("llama")),
                ("general.file_type", 4, 3u32.to_le_bytes().to_vec()),
                ("llama.context_length", 4, 8192u32.to_le_bytes().to_vec()),
                ("general.license", 8, str_val("apache-2.0")),
                ("general.organization", 8, str_val("Org")),
            ],
            &[("a", &[4, 3], 3), ("b", &[10], 0)],
        );
        let f = write(&bytes);
        let h = read_header(f.path()).unwrap();
        assert_eq!(h.architecture(), Some("llama"));
        assert_eq!(h.parameter_count(), 22);
        assert_eq!(h.context_length(), Some(8192));
        assert_eq!(h.quantization(), "Q4_1");
        assert_eq!(h.license(), Some("apache-2.0"));
        assert_eq!(h.publisher(), Some("Org"));
        assert!(!h.has_chat_template());
    }

    #[test]
    fn quantization_falls_back_to_dominant_tensor_type() {
        let bytes = gguf_bytes(&[], &[("a", &[100], 8), ("b", &[10], 0)]);
        let f = write(&bytes);
        assert_eq!(read_header(f.path()).unwrap().quantization(), "Q8_0");
    }

    #[test]
    fn rejects_bad_magic_and_truncation() {
        let f = write(b"NOTGGUF-at-all");
        let e = read_header(f.path()).unwrap_err();
        assert!(matches!(e, GgufError::BadMagic { .. }), "{e}");
        let full = gguf_bytes(&[("general.architecture", 8, str_val("llama"))], &[]);
        let f = write(&full[..full.len() - 3]);
        let e = read_header(f.path()).unwrap_err();
        assert!(matches!(e, GgufError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains(&f.path().display().to_string()));
        let e = read_header(Path::new("/nonexistent/model.gguf")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/model.gguf"));
    }

    #[test]
    fn rejects_implausible_counts() {
        let mut b = b"GGUF".to_vec();
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&u64::MAX.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        let f = write(&b);
        assert!(matches!(
            read_header(f.path()).unwrap_err(),
            GgufError::Corrupt { .. }
        ));
    }
}
