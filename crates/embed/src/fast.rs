//! all-MiniLM-L6-v2 (int8 ONNX) through fastembed, loaded from local files:
//! nothing is fetched at run time.

use crate::{normalize, EmbedError, Embedder};
use fastembed::{InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Where the model and ONNX Runtime live on disk.
#[derive(Debug, Clone)]
pub struct ModelPaths {
    pub onnx_file: PathBuf,
    /// Holds tokenizer.json, config.json, special_tokens_map.json, tokenizer_config.json.
    pub tokenizer_dir: PathBuf,
    /// `libonnxruntime.so`; `None` falls back to `ORT_DYLIB_PATH`.
    pub ort_library: Option<PathBuf>,
}

impl ModelPaths {
    /// The layout `models/fetch.py` produces under `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            onnx_file: dir.join("minilm/model.onnx"),
            tokenizer_dir: dir.join("minilm"),
            ort_library: Some(dir.join("onnxruntime/libonnxruntime.so.1.31.1")),
        }
    }
}

pub struct FastEmbedder {
    model: Mutex<TextEmbedding>,
    dim: usize,
}

static ORT_LOADED: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Loads ONNX Runtime once per process, with a clear error instead of ort's
/// panic when the library is missing.
fn load_runtime(explicit: Option<&Path>) -> Result<(), EmbedError> {
    let result = ORT_LOADED.get_or_init(|| {
        let path = explicit
            .map(Path::to_path_buf)
            .filter(|p| p.exists())
            .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from))
            .ok_or_else(|| {
                format!(
                    "ONNX Runtime library not found at {} and ORT_DYLIB_PATH is unset; run `python3 models/fetch.py`",
                    explicit.map_or_else(|| "(no path configured)".into(), |p| p.display().to_string())
                )
            })?;
        if !path.exists() {
            return Err(format!("ONNX Runtime library {} does not exist", path.display()));
        }
        ort::init_from(&path).map_err(|e| format!("loading {}: {e}", path.display()))?;
        Ok(path)
    });
    result.as_ref().map(|_| ()).map_err(|e| EmbedError::Runtime(e.clone()))
}

fn read(path: &Path) -> Result<Vec<u8>, EmbedError> {
    std::fs::read(path)
        .map_err(|e| EmbedError::Files(format!("{}: {e} (run `python3 models/fetch.py`)", path.display())))
}

impl FastEmbedder {
    /// `threads` is ONNX Runtime's intra-op thread count.
    pub fn load(paths: &ModelPaths, threads: usize) -> Result<Self, EmbedError> {
        load_runtime(paths.ort_library.as_deref())?;
        let dir = &paths.tokenizer_dir;
        let tokenizer_files = TokenizerFiles {
            tokenizer_file: read(&dir.join("tokenizer.json"))?,
            config_file: read(&dir.join("config.json"))?,
            special_tokens_map_file: read(&dir.join("special_tokens_map.json"))?,
            tokenizer_config_file: read(&dir.join("tokenizer_config.json"))?,
        };
        let model =
            UserDefinedEmbeddingModel::new(read(&paths.onnx_file)?, tokenizer_files).with_pooling(Pooling::Mean);
        let options = InitOptionsUserDefined::new().with_max_length(256).with_intra_threads(threads.max(1));
        let mut model =
            TextEmbedding::try_new_from_user_defined(model, options).map_err(|e| EmbedError::Runtime(e.to_string()))?;
        let probe = model.embed(["probe"], None).map_err(|e| EmbedError::Inference(e.to_string()))?;
        let dim = probe.first().map_or(0, Vec::len);
        if dim == 0 {
            return Err(EmbedError::Inference("the model produced an empty embedding".into()));
        }
        Ok(Self { model: Mutex::new(model), dim })
    }
}

impl Embedder for FastEmbedder {
    fn name(&self) -> &str {
        "all-MiniLM-L6-v2-int8"
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut model = self.model.lock().unwrap_or_else(|e| e.into_inner());
        let out = model.embed(texts, Some(texts.len().max(1))).map_err(|e| EmbedError::Inference(e.to_string()))?;
        Ok(out.into_iter().map(normalize).collect())
    }
}
