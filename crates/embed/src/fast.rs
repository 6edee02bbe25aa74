//! Sentence models through fastembed, loaded from local files: nothing is
//! fetched at run time. all-MiniLM-L6-v2 is the default; EmbeddingGemma-300M
//! is opt-in ([`EmbeddingModel`]).
//!
//! The ONNX files are the ones `models/fetch.py` builds: weights stored as
//! int8, activations quantized on each call, so their matrix products run on
//! integer kernels. Each returns per-token states that fastembed mean-pools
//! over the attention mask (Gemma's two Dense layers are folded into its
//! graph: being linear, they commute with the mean).

use crate::Reading;
use crate::{normalize, EmbedError, Embedder};
use fastembed::{InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use tokenizers::Tokenizer;

/// The sentence models Deja can embed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmbeddingModel {
    /// all-MiniLM-L6-v2 (384 dimensions, English only, fast).
    MiniLm,
    /// EmbeddingGemma-300M (768 dimensions, multilingual, ~13× the CPU time).
    Gemma,
}

impl EmbeddingModel {
    /// The folder under the models directory `models/fetch.py` fills.
    pub fn folder(self) -> &'static str {
        match self {
            EmbeddingModel::MiniLm => "minilm",
            EmbeddingModel::Gemma => "gemma",
        }
    }

    /// The model's name, as configuration and reports spell it.
    pub fn label(self) -> &'static str {
        match self {
            EmbeddingModel::MiniLm => "all-MiniLM-L6-v2",
            EmbeddingModel::Gemma => "EmbeddingGemma-300M",
        }
    }

    /// Tokens read of one text, special tokens and the prompt included.
    /// MiniLM was trained on 128 and has 512 positions. Gemma reads 2048,
    /// but costs about 1 ms per token on one core: 256 keeps the worst
    /// lookup near a quarter of a second (and inside its local layers'
    /// sliding window, so every token sees every other).
    pub fn window(self) -> usize {
        256
    }

    /// What is put before every text. Gemma was trained with task prompts;
    /// without its similarity prompt most of its gain over MiniLM is lost.
    pub fn prompt(self) -> &'static str {
        match self {
            EmbeddingModel::MiniLm => "",
            EmbeddingModel::Gemma => "task: sentence similarity | query: ",
        }
    }

    /// The tokenizer's piece for what it cannot read.
    fn unknown_token(self) -> &'static str {
        match self {
            EmbeddingModel::MiniLm => "[UNK]",
            EmbeddingModel::Gemma => "<unk>",
        }
    }
}

/// Where the model and ONNX Runtime live on disk.
#[derive(Debug, Clone)]
pub struct ModelPaths {
    pub model: EmbeddingModel,
    pub onnx_file: PathBuf,
    /// Holds tokenizer.json, config.json, special_tokens_map.json, tokenizer_config.json.
    pub tokenizer_dir: PathBuf,
    /// `libonnxruntime.so`; `None` falls back to `ORT_DYLIB_PATH`.
    pub ort_library: Option<PathBuf>,
    /// Run every text in a forward pass of its own. The built model quantizes
    /// activations per call with one scale for the whole input tensor, so a
    /// text batched with others (and their padding) gets a slightly different
    /// vector (cosine about 0.994 to its vector alone); alone, a text's vector
    /// depends on the text only, whatever the load.
    pub one_text_per_pass: bool,
}

impl ModelPaths {
    /// The layout `models/fetch.py` produces under `dir`, for MiniLM.
    pub fn in_dir(dir: &Path) -> Self {
        Self::of(EmbeddingModel::MiniLm, dir)
    }

    /// The layout `models/fetch.py` produces under `dir`, for `model`.
    pub fn of(model: EmbeddingModel, dir: &Path) -> Self {
        Self {
            model,
            onnx_file: dir.join(model.folder()).join("model.onnx"),
            tokenizer_dir: dir.join(model.folder()),
            ort_library: Some(dir.join("onnxruntime/libonnxruntime.so.1.31.1")),
            one_text_per_pass: true,
        }
    }

    /// The baseline export kept beside the model for comparisons
    /// (`minilm/baseline-int8-storage.onnx`): its arithmetic is fp32, so
    /// batching does not change its vectors.
    pub fn baseline_in_dir(dir: &Path) -> Self {
        let mut paths = Self::in_dir(dir).with_onnx_file(dir.join("minilm/baseline-int8-storage.onnx"));
        paths.one_text_per_pass = false;
        paths
    }

    /// The same layout with another ONNX file of the same model, such as
    /// `minilm/baseline-int8-storage.onnx`, kept for comparisons.
    pub fn with_onnx_file(mut self, file: PathBuf) -> Self {
        self.onnx_file = file;
        self
    }
}

pub struct FastEmbedder {
    model: Mutex<TextEmbedding>,
    /// The model's tokenizer without truncation or padding, to tell what the
    /// model reads of a text without running it.
    reader: Tokenizer,
    unknown_id: Option<u32>,
    dim: usize,
    model_kind: EmbeddingModel,
    one_text_per_pass: bool,
    /// The model and the file it was loaded from, for logs and `deja eval`.
    name: String,
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

fn read(path: &Path, model: EmbeddingModel) -> Result<Vec<u8>, EmbedError> {
    let fetch = match model {
        EmbeddingModel::MiniLm => "python3 models/fetch.py",
        EmbeddingModel::Gemma => "python3 models/fetch.py --gemma --accept-gemma-terms-of-use",
    };
    std::fs::read(path).map_err(|e| EmbedError::Files(format!("{}: {e} (run `{fetch}`)", path.display())))
}

impl FastEmbedder {
    /// `threads` is ONNX Runtime's intra-op thread count.
    pub fn load(paths: &ModelPaths, threads: usize) -> Result<Self, EmbedError> {
        load_runtime(paths.ort_library.as_deref())?;
        let dir = &paths.tokenizer_dir;
        let kind = paths.model;
        let tokenizer_files = TokenizerFiles {
            tokenizer_file: read(&dir.join("tokenizer.json"), kind)?,
            config_file: read(&dir.join("config.json"), kind)?,
            special_tokens_map_file: read(&dir.join("special_tokens_map.json"), kind)?,
            tokenizer_config_file: read(&dir.join("tokenizer_config.json"), kind)?,
        };
        let onnx = read(&paths.onnx_file, kind)?;
        // The name says which weights made a vector: replicas compare it
        // before indexing each other's vectors, so the file's digest is in it.
        let digest = blake3::hash(&onnx).to_hex();
        let model = UserDefinedEmbeddingModel::new(onnx, tokenizer_files).with_pooling(Pooling::Mean);
        let options = InitOptionsUserDefined::new().with_max_length(kind.window()).with_intra_threads(threads.max(1));
        let mut model =
            TextEmbedding::try_new_from_user_defined(model, options).map_err(|e| EmbedError::Runtime(e.to_string()))?;
        let probe = model.embed(["probe"], None).map_err(|e| EmbedError::Inference(e.to_string()))?;
        let dim = probe.first().map_or(0, Vec::len);
        if dim == 0 {
            return Err(EmbedError::Inference("the model produced an empty embedding".into()));
        }
        let mut reader = model.tokenizer.clone();
        reader.with_padding(None).with_truncation(None).map_err(|e| EmbedError::Files(e.to_string()))?;
        let unknown_id = reader.token_to_id(kind.unknown_token());
        let file = paths.onnx_file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Self {
            model: Mutex::new(model),
            reader,
            unknown_id,
            dim,
            model_kind: kind,
            one_text_per_pass: paths.one_text_per_pass,
            name: format!("{} ({file}, {})", kind.label(), digest.get(..12).unwrap_or_default()),
        })
    }
}

impl Embedder for FastEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn window(&self) -> usize {
        self.model_kind.window()
    }

    fn read(&self, text: &str) -> Reading {
        // The prompt is read too: it takes part of the window.
        let prompt = self.model_kind.prompt();
        let prompted;
        let (text, skip) = if prompt.is_empty() {
            (text, 0)
        } else {
            prompted = format!("{prompt}{text}");
            (prompted.as_str(), prompt.len())
        };
        let Ok(encoding) = self.reader.encode(text, true) else {
            // A text the tokenizer refuses is one the model cannot read.
            return Reading { tokens: usize::MAX, unknown: usize::MAX, unknown_digest: u64::MAX };
        };
        let mut digest = blake3::Hasher::new();
        let mut unknown = 0;
        for (id, (start, end)) in encoding.get_ids().iter().zip(encoding.get_offsets()) {
            if Some(*id) == self.unknown_id && *start >= skip {
                unknown += 1;
                digest.update(text.get(*start..*end).unwrap_or_default().as_bytes());
                digest.update(&[0xff]);
            }
        }
        let bytes = digest.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(bytes.as_bytes().get(..8).unwrap_or(&[0; 8]));
        Reading { tokens: encoding.get_ids().len(), unknown, unknown_digest: u64::from_le_bytes(first) }
    }

    fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut model = self.model.lock().unwrap_or_else(|e| e.into_inner());
        let pass = if self.one_text_per_pass { 1 } else { texts.len().max(1) };
        let prompt = self.model_kind.prompt();
        let prompted: Vec<String>;
        let texts = if prompt.is_empty() {
            texts
        } else {
            prompted = texts.iter().map(|t| format!("{prompt}{t}")).collect();
            &prompted
        };
        let out = model.embed(texts, Some(pass)).map_err(|e| EmbedError::Inference(e.to_string()))?;
        Ok(out.into_iter().map(normalize).collect())
    }
}
