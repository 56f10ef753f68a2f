//! The files of one checkpoint: a single safetensors file, or the shards
//! of a sharded one with their JSON index.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs;
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use super::error::{PairProblem, PthDirectoryProblem};
use super::reader::{check_pair, pairs_in, position_in};
use super::{CheckpointError, MappedFile, SafetensorsView, TensorEntry};

/// The largest shard index read (a real one for a model of thousands of
/// tensors is a few hundred kilobytes).
const MAX_INDEX: u64 = 100_000_000;

/// The suffix of a sharded checkpoint's index file.
pub const INDEX_SUFFIX: &str = ".safetensors.index.json";

/// One checkpoint on disk: a single safetensors file, or the shards that a
/// JSON index (`model.safetensors.index.json`, as Hugging Face writes
/// them) names, all memory-mapped.
///
/// [`CheckpointFiles::open`] takes what a user has at hand:
///
/// - a safetensors file: the checkpoint is that file, unless an index
///   beside it lists it as one of its shards, which is an error
///   ([`CheckpointError::OneShard`]): a shard alone is part of a model,
///   and global pruning over it would rank a part as if it were the whole
///   ([`CheckpointFiles::open_file`] opens it alone on purpose);
/// - an index file: the checkpoint is the shards it names, in its
///   directory;
/// - a directory: the one index in it (`*.safetensors.index.json`), else
///   the one safetensors file in it;
/// - with feature `pth`: a PyTorch file (`.pth`, `.pt`, `.bin`, as
///   `torch.save` writes it), or the index of PyTorch shards
///   (`pytorch_model.bin.index.json`, as transformers writes it); in a
///   directory that holds no safetensors checkpoint, the one index of
///   PyTorch shards, else `pytorch_model.bin` (transformers' name, as
///   `from_pretrained` takes it: a Trainer's `optimizer.pt` or
///   `training_args.bin` beside it are other files), else the one
///   PyTorch file; several of other names and no index are an error,
///   [`CheckpointError::PthDirectory`]). Each file is converted
///   to safetensors in a temporary directory, removed when the
///   `CheckpointFiles` is dropped, and named as transformers names its
///   safetensors twin (`pytorch_model-00001-of-00002.bin` as
///   `model-00001-of-00002.safetensors`, `pytorch_model.bin` in a
///   directory as `model.safetensors`), so that a directory output is a
///   safetensors checkpoint (with a `model.safetensors.index.json` for
///   shards). Without the feature, a directory of PyTorch files is
///   refused with a [`CheckpointError::PthDirectory`] that says to enable
///   it.
///
/// The index is checked against its shards before anything else is read:
/// every shard it names is a plain file name in its directory (no `/`, no
/// `..`), every tensor it lists is in the shard it names, and every tensor
/// of a shard is listed, for that shard ([`CheckpointError::BadIndex`]).
///
/// ```
/// use ndprune::io::{Checkpoint, CheckpointFiles};
/// use ndprune::prelude::*;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join("ndprune-doc-files");
/// # let _ = std::fs::remove_dir_all(&dir); // a fresh directory
/// std::fs::create_dir_all(&dir)?;
/// let layer = Layer::new().with_parameter("weight", ndarray::ArrayD::<f32>::ones(vec![2, 2]))?;
/// Checkpoint::new(Sequential::new().with_child("fc", layer)?).save(dir.join("model.safetensors"))?;
///
/// let files = CheckpointFiles::open(&dir)?;
/// assert!(!files.is_sharded());
/// let view = files.view()?;
/// assert_eq!(view.get("fc.weight").unwrap().shape(), &[2, 2]);
/// # drop(view);
/// # drop(files);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct CheckpointFiles {
    /// What the user named (a file, an index or a directory).
    origin: PathBuf,
    /// The index and its `metadata` object, for a sharded checkpoint.
    index: Option<(PathBuf, Map<String, Value>)>,
    /// The files, in the index's order of first mention (or the one file).
    files: Vec<MappedFile>,
    /// Each file's name as the index names it (or the single file's name).
    names: Vec<String>,
    /// For each tensor the index lists, the position in `files` it names.
    weight_map: BTreeMap<String, usize>,
    /// Regular files beside the shards that are no part of the tensors
    /// (`config.json`, tokenizer files), for a checkpoint opened as an
    /// index or a directory.
    others: Vec<PathBuf>,
    /// Weight files of the model in other formats beside it
    /// (`pytorch_model.bin`, `tf_model.h5`, ...), not copied.
    left_out: Vec<PathBuf>,
    /// The PyTorch files a conversion read (feature `pth`): the input's
    /// own files, where [`CheckpointFiles::files`] are the temporary
    /// conversions.
    sources: Vec<PathBuf>,
    /// The temporary directory holding the safetensors conversion of a
    /// PyTorch file (feature `pth`), removed on drop (after the maps).
    #[cfg(feature = "pth")]
    converted: Option<tempfile::TempDir>,
}

impl CheckpointFiles {
    /// Opens a checkpoint from a safetensors file, a shard index or a
    /// directory (see the type's documentation).
    ///
    /// ```
    /// use ndprune::io::{CheckpointError, CheckpointFiles};
    /// let err = CheckpointFiles::open("/no/such/model.safetensors").unwrap_err();
    /// assert!(matches!(err, CheckpointError::Io { .. }));
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CheckpointError> {
        Self::open_impl(
            path.as_ref(),
            #[cfg(feature = "pth")]
            &mut (),
        )
    }

    /// Opens as [`CheckpointFiles::open`] does, telling `watch` of the
    /// temporary directory a PyTorch input is converted into, before it is
    /// created and once it is (so a program can remove it on a signal,
    /// from the moment it exists). Feature `pth`.
    ///
    /// ```
    /// use ndprune::io::{CheckpointFiles, ConversionWatch};
    /// use std::path::{Path, PathBuf};
    /// #[derive(Default)]
    /// struct Seen(Option<PathBuf>);
    /// impl ConversionWatch for Seen {
    ///     fn created(&mut self, dir: Option<&Path>) {
    ///         self.0 = dir.map(Path::to_path_buf);
    ///     }
    /// }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pth/model.pth");
    /// let mut seen = Seen::default();
    /// let files = CheckpointFiles::open_watched(path, &mut seen)?; // a torch.save file
    /// assert_eq!(seen.0.as_deref(), files.converted_dir());
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "pth")]
    pub fn open_watched(
        path: impl AsRef<Path>,
        watch: &mut dyn ConversionWatch,
    ) -> Result<Self, CheckpointError> {
        Self::open_impl(path.as_ref(), watch)
    }

    fn open_impl(
        path: &Path,
        #[cfg(feature = "pth")] watch: &mut dyn ConversionWatch,
    ) -> Result<Self, CheckpointError> {
        let meta =
            fs::metadata(path).map_err(|e| CheckpointError::io(path, "reading the type of", e))?;
        if meta.is_dir() {
            return Self::open_dir(
                path,
                #[cfg(feature = "pth")]
                watch,
            );
        }
        if is_index_name(path) {
            return Self::open_index(path, path);
        }
        #[cfg(feature = "pth")]
        if is_bin_index_name(path) {
            return Self::open_bin_index(path, path, watch);
        }
        if let Some(index) = index_listing(path)? {
            return Err(CheckpointError::OneShard {
                path: path.to_path_buf(),
                index,
            });
        }
        Self::open_single(
            path,
            #[cfg(feature = "pth")]
            watch,
        )
    }

    /// Opens one file as safetensors, or, where it is not safetensors but
    /// what `torch.save` writes, its conversion. (Any other error of the
    /// header is left to `view`, as without `pth`.)
    fn open_single(
        path: &Path,
        #[cfg(feature = "pth")] watch: &mut dyn ConversionWatch,
    ) -> Result<Self, CheckpointError> {
        let files = Self::open_file(path)?;
        #[cfg(feature = "pth")]
        if let Err(CheckpointError::NotSafetensors {
            format: super::ForeignFormat::TorchZip | super::ForeignFormat::TorchPickle,
            ..
        }) = files.view()
        {
            drop(files);
            return Self::open_pth(path, watch);
        }
        Ok(files)
    }

    /// Opens one safetensors file as a whole checkpoint, whether or not an
    /// index beside it lists it as a shard.
    ///
    /// ```
    /// use ndprune::io::CheckpointFiles;
    /// assert!(CheckpointFiles::open_file("/no/such/file.safetensors").is_err());
    /// ```
    pub fn open_file(path: impl AsRef<Path>) -> Result<Self, CheckpointError> {
        let path = path.as_ref();
        let file = MappedFile::open(path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model.safetensors".to_string());
        Ok(CheckpointFiles {
            origin: path.to_path_buf(),
            index: None,
            files: vec![file],
            names: vec![name],
            weight_map: BTreeMap::new(),
            others: Vec::new(),
            left_out: Vec::new(),
            sources: Vec::new(),
            #[cfg(feature = "pth")]
            converted: None,
        })
    }

    /// Converts a PyTorch file (one that failed to parse as safetensors
    /// and starts as a zip archive or a pickle) to safetensors in a
    /// temporary directory
    /// (under the system's, `TMPDIR` on Unix) and opens that, named as
    /// transformers names its safetensors twin (`pytorch_model.bin` as
    /// `model.safetensors`), the name a directory output gives it.
    #[cfg(feature = "pth")]
    fn open_pth(path: &Path, watch: &mut dyn ConversionWatch) -> Result<Self, CheckpointError> {
        let (dir, converted) = super::pth::convert_to_temp(path, watch)?;
        let mut files = Self::open_file(&converted)?;
        files.origin = path.to_path_buf();
        if let Some(name) = path.file_name() {
            files.names = vec![safetensors_name_of(&name.to_string_lossy())];
        }
        files.converted = Some(dir);
        files.sources = vec![path.to_path_buf()];
        Ok(files)
    }

    /// Opens the one PyTorch file of a directory that holds no
    /// safetensors checkpoint and no shard index (a model saved by
    /// transformers with `safe_serialization=False`: `pytorch_model.bin`
    /// beside `config.json`), converted (unless it is safetensors under
    /// that name) and named as [`Self::open_pth`] does, with the other
    /// files of the directory, as for one safetensors file in a
    /// directory.
    #[cfg(feature = "pth")]
    fn open_pth_in_dir(
        dir: &Path,
        file: &Path,
        watch: &mut dyn ConversionWatch,
    ) -> Result<Self, CheckpointError> {
        // A `.bin` may be safetensors under another name: read as such,
        // as when named alone; either way the output is safetensors.
        let mut files = Self::open_single(file, watch)?;
        if let Some(name) = file.file_name() {
            files.names = vec![safetensors_name_of(&name.to_string_lossy())];
        }
        files.origin = dir.to_path_buf();
        (files.others, files.left_out) = other_files(dir, file, &[file.to_path_buf()])?;
        Ok(files)
    }

    /// Whether the checkpoint was read from a PyTorch file (`.pth`, `.pt`,
    /// `.bin`) and converted to a temporary safetensors file (feature
    /// `pth`), which is then [`files`](Self::files)`()[0]`.
    ///
    /// ```
    /// use ndprune::io::{Checkpoint, CheckpointFiles};
    /// use ndprune::prelude::*;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join("ndprune-doc-converted.safetensors");
    /// let layer = Layer::new().with_parameter("weight", ndarray::ArrayD::<f32>::ones(vec![2]))?;
    /// Checkpoint::new(Sequential::new().with_child("fc", layer)?).save(&path)?;
    /// assert!(!CheckpointFiles::open(&path)?.is_converted());
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "pth")]
    pub fn is_converted(&self) -> bool {
        self.converted.is_some()
    }

    /// Opens the shards of PyTorch files an index names
    /// (`pytorch_model.bin.index.json`, as transformers writes them), each
    /// converted to a safetensors file in one temporary directory under
    /// the system's, named as transformers names safetensors shards
    /// (`pytorch_model-00001-of-00002.bin` as
    /// `model-00001-of-00002.safetensors`). The index is checked against
    /// the converted shards as a safetensors index is against its shards.
    #[cfg(feature = "pth")]
    fn open_bin_index(
        index: &Path,
        origin: &Path,
        watch: &mut dyn ConversionWatch,
    ) -> Result<Self, CheckpointError> {
        let dir = index.parent().unwrap_or(Path::new("")).to_path_buf();
        let (metadata, listed) = read_index(index)?;
        let bad = |reason: String| CheckpointError::BadIndex {
            path: index.to_path_buf(),
            reason,
        };
        // The shards, in the order the index first names them.
        let mut shards: Vec<String> = Vec::new();
        let mut position: HashMap<String, usize> = HashMap::new();
        let mut weight_map = BTreeMap::new();
        for (tensor, shard) in listed {
            let at = match position.get(&shard) {
                Some(&at) => at,
                None => {
                    if !is_plain_file_name(&shard) {
                        return Err(bad(format!(
                            "tensor `{tensor}` is in {shard:?}, which is no file name in the index's directory"
                        )));
                    }
                    position.insert(shard.clone(), shards.len());
                    shards.push(shard);
                    shards.len() - 1
                }
            };
            weight_map.insert(tensor, at);
        }
        let mut names: Vec<String> = Vec::with_capacity(shards.len());
        for shard in &shards {
            let name = safetensors_name_of(shard);
            if let Some(twin) = names.iter().position(|n| *n == name) {
                return Err(bad(format!(
                    "the shards {} and {shard} would both be converted to {name}",
                    shards[twin]
                )));
            }
            names.push(name);
        }
        let temp = super::pth::temp_dir(watch)?;
        let mut files = Vec::with_capacity(shards.len());
        for (shard, name) in shards.iter().zip(&names) {
            let converted = temp.path().join(name);
            super::pth::convert_to_safetensors(dir.join(shard), &converted)?;
            files.push(MappedFile::open(&converted)?);
        }
        let shard_paths: Vec<PathBuf> = shards.iter().map(|n| dir.join(n)).collect();
        let (others, left_out) = other_files(&dir, index, &shard_paths)?;
        let files = CheckpointFiles {
            origin: origin.to_path_buf(),
            index: Some((index.to_path_buf(), metadata)),
            files,
            names,
            weight_map,
            others,
            left_out,
            sources: shard_paths,
            converted: Some(temp),
        };
        files.view()?;
        Ok(files)
    }

    /// The temporary directory holding the safetensors conversion of a
    /// PyTorch input (removed when the `CheckpointFiles` is dropped), so
    /// that a program that handles signals, on which no destructor runs,
    /// can remove it in its handler.
    ///
    /// ```
    /// use ndprune::io::CheckpointFiles;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pth/model.pth");
    /// let files = CheckpointFiles::open(path)?; // torch.save(model.state_dict(), path)
    /// let temp = files.converted_dir().unwrap().to_path_buf();
    /// assert!(temp.join("model.safetensors").is_file());
    /// drop(files);
    /// assert!(!temp.exists());
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "pth")]
    pub fn converted_dir(&self) -> Option<&Path> {
        self.converted.as_ref().map(tempfile::TempDir::path)
    }

    fn open_dir(
        dir: &Path,
        #[cfg(feature = "pth")] watch: &mut dyn ConversionWatch,
    ) -> Result<Self, CheckpointError> {
        let (mut indexes, mut singles) = (Vec::new(), Vec::new());
        let (mut bin_indexes, mut torch_files): (Vec<PathBuf>, Vec<PathBuf>) =
            (Vec::new(), Vec::new());
        for entry in read_dir(dir)? {
            if is_index_name(&entry) {
                indexes.push(entry);
            } else if entry.extension() == Some(OsStr::new("safetensors")) {
                singles.push(entry);
            } else if is_bin_index_name(&entry) {
                bin_indexes.push(entry);
            } else if is_torch_file_name(&entry) && fs::metadata(&entry).is_ok_and(|m| m.is_file())
            {
                torch_files.push(entry);
            }
        }
        // PyTorch files only where there is no safetensors checkpoint: the
        // one index of PyTorch shards, else the one PyTorch file.
        if indexes.is_empty() && singles.is_empty() {
            let pth_directory =
                |files: &[PathBuf], problem: PthDirectoryProblem| CheckpointError::PthDirectory {
                    path: dir.to_path_buf(),
                    files: files
                        .iter()
                        .map(|p| {
                            p.file_name()
                                .expect("a listed entry has a name")
                                .to_string_lossy()
                                .into_owned()
                        })
                        .collect(),
                    problem,
                };
            #[cfg(feature = "pth")]
            match (bin_indexes.as_slice(), torch_files.as_slice()) {
                ([index], _) => return Self::open_bin_index(index, dir, watch),
                ([], [file]) => return Self::open_pth_in_dir(dir, file, watch),
                // Several: transformers' own name is the model, as
                // `from_pretrained` takes it whatever a Trainer saved
                // beside it (`optimizer.pt`, `training_args.bin`, ...),
                // which are then other files, copied.
                ([], [_, _, ..]) => {
                    return match torch_files
                        .iter()
                        .find(|p| p.file_name() == Some(OsStr::new("pytorch_model.bin")))
                    {
                        Some(file) => Self::open_pth_in_dir(dir, file, watch),
                        None => Err(pth_directory(&torch_files, PthDirectoryProblem::Several)),
                    };
                }
                // None, or several indexes (below).
                _ => {}
            }
            #[cfg(not(feature = "pth"))]
            if !bin_indexes.is_empty() || !torch_files.is_empty() {
                let mut found = bin_indexes.clone();
                found.extend(torch_files.iter().cloned());
                found.sort();
                return Err(pth_directory(&found, PthDirectoryProblem::FeatureOff));
            }
        }
        let none = |reason: String| CheckpointError::NoCheckpoint {
            path: dir.to_path_buf(),
            reason,
        };
        match (indexes.as_slice(), singles.as_slice()) {
            ([index], _) => Self::open_index(index, dir),
            ([], [file]) => {
                let mut files = Self::open_file(file)?;
                files.origin = dir.to_path_buf();
                // `config.json` and the tokenizer files beside one file
                // go with it, as beside shards.
                (files.others, files.left_out) =
                    other_files(dir, file, std::slice::from_ref(file))?;
                Ok(files)
            }
            ([], []) if bin_indexes.len() > 1 => Err(none(format!(
                "the directory holds {} PyTorch shard indexes; name the index to open",
                bin_indexes.len()
            ))),
            ([], []) => Err(none(
                "the directory holds no safetensors file, no PyTorch file (.bin, .pth, .pt) and no shard index".into(),
            )),
            ([], many) => Err(none(format!(
                "the directory holds {} safetensors files and no shard index to say how they form one model; name the file to open",
                many.len()
            ))),
            (many, _) => Err(none(format!(
                "the directory holds {} shard indexes ({}); name the index to open",
                many.len(),
                many.iter()
                    .map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    fn open_index(index: &Path, origin: &Path) -> Result<Self, CheckpointError> {
        let dir = index.parent().unwrap_or(Path::new("")).to_path_buf();
        let (metadata, listed) = read_index(index)?;
        let bad = |reason: String| CheckpointError::BadIndex {
            path: index.to_path_buf(),
            reason,
        };
        // The shards, in the order the index first names them.
        let mut names: Vec<String> = Vec::new();
        let mut position: HashMap<String, usize> = HashMap::new();
        let mut weight_map = BTreeMap::new();
        for (tensor, shard) in listed {
            let at = match position.get(&shard) {
                Some(&at) => at,
                None => {
                    if !is_plain_file_name(&shard) {
                        return Err(bad(format!(
                            "tensor `{tensor}` is in {shard:?}, which is no file name in the index's directory"
                        )));
                    }
                    position.insert(shard.clone(), names.len());
                    names.push(shard);
                    names.len() - 1
                }
            };
            weight_map.insert(tensor, at);
        }
        let files = names
            .iter()
            .map(|n| {
                MappedFile::open(dir.join(n))
                    .map_err(|e| bad(format!("the shard {n} it lists cannot be opened ({e})")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let shard_paths: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
        let (others, left_out) = other_files(&dir, index, &shard_paths)?;
        let files = CheckpointFiles {
            origin: origin.to_path_buf(),
            index: Some((index.to_path_buf(), metadata)),
            files,
            names,
            weight_map,
            others,
            left_out,
            sources: Vec::new(),
            #[cfg(feature = "pth")]
            converted: None,
        };
        // Checked now, so that no later reader meets a disagreement.
        files.view()?;
        Ok(files)
    }

    /// Whether the checkpoint is sharded (opened through an index).
    ///
    /// ```
    /// # use ndprune::io::{Checkpoint, CheckpointFiles};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join("ndprune-doc-sharded.safetensors");
    /// Checkpoint::new(ndprune::Sequential::<f32>::new()).save(&path)?;
    /// assert!(!CheckpointFiles::open_file(&path)?.is_sharded());
    /// # Ok(()) }
    /// ```
    pub fn is_sharded(&self) -> bool {
        self.index.is_some()
    }

    /// The path the checkpoint was opened from.
    ///
    /// ```
    /// # use ndprune::io::{Checkpoint, CheckpointFiles};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join("ndprune-doc-origin.safetensors");
    /// Checkpoint::new(ndprune::Sequential::<f32>::new()).save(&path)?;
    /// assert_eq!(CheckpointFiles::open(&path)?.origin(), path);
    /// # Ok(()) }
    /// ```
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// The index file of a sharded checkpoint.
    ///
    /// ```
    /// # use ndprune::io::{Checkpoint, CheckpointFiles};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join("ndprune-doc-index.safetensors");
    /// Checkpoint::new(ndprune::Sequential::<f32>::new()).save(&path)?;
    /// assert!(CheckpointFiles::open(&path)?.index().is_none());
    /// # Ok(()) }
    /// ```
    pub fn index(&self) -> Option<&Path> {
        self.index.as_ref().map(|(p, _)| p.as_path())
    }

    /// The `metadata` object of the index (empty without one).
    ///
    /// ```
    /// # use ndprune::io::{Checkpoint, CheckpointFiles};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join("ndprune-doc-index-meta.safetensors");
    /// Checkpoint::new(ndprune::Sequential::<f32>::new()).save(&path)?;
    /// assert!(CheckpointFiles::open(&path)?.index_metadata().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn index_metadata(&self) -> Map<String, Value> {
        self.index
            .as_ref()
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// The mapped files: the shards in the order the index first names
    /// them, or the one file.
    ///
    /// ```
    /// # use ndprune::io::{Checkpoint, CheckpointFiles};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join("ndprune-doc-shards.safetensors");
    /// Checkpoint::new(ndprune::Sequential::<f32>::new()).save(&path)?;
    /// assert_eq!(CheckpointFiles::open(&path)?.files().len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn files(&self) -> &[MappedFile] {
        &self.files
    }

    /// Each file's name as the index names it (for a single file: its
    /// file name), the name a directory output gives it; for a converted
    /// PyTorch file, its safetensors twin's (`model.safetensors` for
    /// `pytorch_model.bin` or `model.pth`, `model-00001-of-00002.safetensors`
    /// for `pytorch_model-00001-of-00002.bin`).
    ///
    /// ```
    /// # use ndprune::io::{Checkpoint, CheckpointFiles};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join("ndprune-doc-names.safetensors");
    /// Checkpoint::new(ndprune::Sequential::<f32>::new()).save(&path)?;
    /// assert_eq!(CheckpointFiles::open(&path)?.file_names(), ["ndprune-doc-names.safetensors"]);
    /// # Ok(()) }
    /// ```
    pub fn file_names(&self) -> &[String] {
        &self.names
    }

    /// The regular files beside the shards that hold no tensors
    /// (`config.json`, tokenizer files), for a checkpoint opened through
    /// an index or a directory; sorted by name. No index and no
    /// safetensors file is among them (one the index does not list is no
    /// part of the model, and copied beside a pruned output it would
    /// disagree with it).
    ///
    /// ```
    /// # use ndprune::io::{Checkpoint, CheckpointFiles};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join("ndprune-doc-others.safetensors");
    /// Checkpoint::new(ndprune::Sequential::<f32>::new()).save(&path)?;
    /// assert!(CheckpointFiles::open(&path)?.other_files().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn other_files(&self) -> &[PathBuf] {
        &self.others
    }

    /// The model's weights in other formats found beside it, which are
    /// not among [`CheckpointFiles::other_files`]: transformers'
    /// `pytorch_model*.bin`, `tf_model*.h5` and `flax_model*.msgpack`
    /// (and their indexes) beside a safetensors checkpoint. Copied beside
    /// a pruned output they would be the unpruned model; a program should
    /// say that they were left out (`ndprune` does).
    ///
    /// ```
    /// # use ndprune::io::{Checkpoint, CheckpointFiles};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join("ndprune-doc-left-out");
    /// # let _ = std::fs::remove_dir_all(&dir); // a fresh directory
    /// std::fs::create_dir_all(&dir)?;
    /// Checkpoint::new(ndprune::Sequential::<f32>::new()).save(dir.join("model.safetensors"))?;
    /// std::fs::write(dir.join("pytorch_model.bin"), b"the same model, for PyTorch")?;
    /// std::fs::write(dir.join("config.json"), b"{}")?;
    /// let files = CheckpointFiles::open(&dir)?;
    /// assert_eq!(files.other_files(), [dir.join("config.json")]);
    /// assert_eq!(files.weights_left_out(), [dir.join("pytorch_model.bin")]);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn weights_left_out(&self) -> &[PathBuf] {
        &self.left_out
    }

    /// Every file of the input, which no output may replace: what was
    /// named (a file, an index), the index, the files the tensors were
    /// read from (the safetensors files, or the PyTorch files converted,
    /// and their conversions), the [other files](Self::other_files) and
    /// the [weights left out](Self::weights_left_out).
    /// [`Output::check_for`](super::Output::check_for) refuses an output
    /// at any of them.
    ///
    /// ```
    /// # use ndprune::io::{Checkpoint, CheckpointFiles};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join("ndprune-doc-input-files");
    /// # let _ = std::fs::remove_dir_all(&dir); // a fresh directory
    /// std::fs::create_dir_all(&dir)?;
    /// Checkpoint::new(ndprune::Sequential::<f32>::new()).save(dir.join("model.safetensors"))?;
    /// std::fs::write(dir.join("config.json"), b"{}")?;
    /// let files = CheckpointFiles::open(&dir)?;
    /// let all = files.input_files();
    /// assert!(all.contains(&dir.join("model.safetensors").as_path()));
    /// assert!(all.contains(&dir.join("config.json").as_path()));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn input_files(&self) -> Vec<&Path> {
        let mut all = vec![self.origin.as_path()];
        all.extend(self.index.as_ref().map(|(p, _)| p.as_path()));
        all.extend(self.files.iter().map(MappedFile::path));
        all.extend(self.sources.iter().map(PathBuf::as_path));
        all.extend(self.others.iter().map(PathBuf::as_path));
        all.extend(self.left_out.iter().map(PathBuf::as_path));
        all
    }

    /// The total size of the tensor files in bytes.
    ///
    /// ```
    /// # use ndprune::io::{Checkpoint, CheckpointFiles};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join("ndprune-doc-bytes-total.safetensors");
    /// Checkpoint::new(ndprune::Sequential::<f32>::new()).save(&path)?;
    /// assert_eq!(CheckpointFiles::open(&path)?.total_bytes(), 16);
    /// # Ok(()) }
    /// ```
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes().len() as u64).sum()
    }

    /// The checked view of every tensor of the checkpoint, across its
    /// shards.
    ///
    /// ```
    /// # use ndprune::io::{Checkpoint, CheckpointFiles};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join("ndprune-doc-model-view.safetensors");
    /// Checkpoint::new(ndprune::Sequential::<f32>::new()).save(&path)?;
    /// assert!(CheckpointFiles::open(&path)?.view()?.entries().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn view(&self) -> Result<ModelView<'_>, CheckpointError> {
        let views = self
            .files
            .iter()
            .map(|f| f.view())
            .collect::<Result<Vec<_>, _>>()?;
        ModelView::new(self, views)
    }

    /// Checks that no file changed length under its map (see
    /// [`MappedFile::check_unchanged`]).
    pub(crate) fn check_unchanged(&self) -> Result<(), CheckpointError> {
        self.files.iter().try_for_each(MappedFile::check_unchanged)
    }
}

/// Every tensor of a checkpoint's files, checked as one model: names
/// unique across shards, and pruned pairs (`X_orig` with `X_mask`) whole
/// even where the two are in different shards.
///
/// ```
/// use ndprune::io::{Checkpoint, CheckpointFiles};
/// use ndprune::prelude::*;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let path = std::env::temp_dir().join("ndprune-doc-modelview.safetensors");
/// let layer = Layer::new().with_parameter("weight", ndarray::array![1.0f32, -2.0].into_dyn())?;
/// let mut ckpt = Checkpoint::new(Sequential::new().with_child("fc", layer)?);
/// prune::l1_unstructured(&mut ckpt, "fc.weight", Amount::Count(1), None)?;
/// ckpt.save(&path)?;
/// let files = CheckpointFiles::open(&path)?;
/// let view = files.view()?;
/// assert_eq!(view.pruned_pairs()[0].0, "fc.weight");
/// assert_eq!(view.shard_of(view.position("fc.weight_mask").unwrap()), 0);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ModelView<'a> {
    entries: Vec<TensorEntry<'a>>,
    /// The shard (position in the files) of each entry.
    shards: Vec<usize>,
    /// Indices into `entries`, sorted by name.
    by_name: Vec<usize>,
    /// Each shard's header metadata.
    metadata: Vec<Option<BTreeMap<String, String>>>,
}

impl<'a> ModelView<'a> {
    fn new(
        files: &'a CheckpointFiles,
        views: Vec<SafetensorsView<'a>>,
    ) -> Result<Self, CheckpointError> {
        let mut entries = Vec::new();
        let mut shards = Vec::new();
        let mut metadata = Vec::new();
        for (s, view) in views.into_iter().enumerate() {
            metadata.push(view.metadata().cloned());
            for e in view.entries() {
                entries.push(e.clone());
                shards.push(s);
            }
        }
        let mut by_name: Vec<usize> = (0..entries.len()).collect();
        by_name.sort_by(|&a, &b| entries[a].name().cmp(entries[b].name()));
        if let Some((index, _)) = &files.index {
            let bad = |reason: String| CheckpointError::BadIndex {
                path: index.clone(),
                reason,
            };
            for w in by_name.windows(2) {
                if entries[w[0]].name() == entries[w[1]].name() {
                    return Err(bad(format!(
                        "tensor `{}` is in both {} and {}",
                        entries[w[0]].name(),
                        files.names[shards[w[0]]],
                        files.names[shards[w[1]]]
                    )));
                }
            }
            for (i, e) in entries.iter().enumerate() {
                match files.weight_map.get(e.name()) {
                    Some(&s) if s == shards[i] => {}
                    Some(&s) => {
                        return Err(bad(format!(
                            "tensor `{}` is listed in {}, but it is in {}",
                            e.name(),
                            files.names[s],
                            files.names[shards[i]]
                        )))
                    }
                    None => {
                        return Err(bad(format!(
                            "tensor `{}` of {} is not in the weight_map",
                            e.name(),
                            files.names[shards[i]]
                        )))
                    }
                }
            }
            if files.weight_map.len() != entries.len() {
                let missing = files
                    .weight_map
                    .iter()
                    .find(|(name, _)| {
                        by_name
                            .binary_search_by(|&i| entries[i].name().cmp(name))
                            .is_err()
                    })
                    .expect(
                        "every entry is listed, so a count apart means a listed name is missing",
                    );
                return Err(bad(format!(
                    "tensor `{}` is listed in {}, which does not hold it",
                    missing.0, files.names[*missing.1]
                )));
            }
        }
        let view = ModelView {
            entries,
            shards,
            by_name,
            metadata,
        };
        // Pairs within a shard were checked by its view; across shards here.
        for (base, o, m) in view.pruned_pairs() {
            if view.shards[o] != view.shards[m] {
                let plain = view.position(base).is_some();
                check_pair(&view.entries[o], &view.entries[m], plain).map_err(
                    |problem: PairProblem| CheckpointError::BadPair {
                        path: files.files[view.shards[m]].path().to_path_buf(),
                        tensor: base.to_string(),
                        problem,
                    },
                )?;
            }
        }
        Ok(view)
    }

    /// Every tensor, shard by shard, each shard's in the order of its data.
    ///
    /// ```
    /// # use ndprune::io::{Checkpoint, CheckpointFiles};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let path = std::env::temp_dir().join("ndprune-doc-mv-entries.safetensors");
    /// # Checkpoint::new(ndprune::Sequential::<f32>::new()).save(&path)?;
    /// let files = CheckpointFiles::open(&path)?;
    /// assert!(files.view()?.entries().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn entries(&self) -> &[TensorEntry<'a>] {
        &self.entries
    }

    /// The shard (position in [`CheckpointFiles::files`]) of entry `i`.
    ///
    /// ```
    /// # use ndprune::io::CheckpointFiles;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let path = std::env::temp_dir().join("ndprune-doc-mv-shard.safetensors");
    /// # let layer = ndprune::Layer::new().with_parameter("bias", ndarray::ArrayD::<f32>::zeros(vec![2]))?;
    /// # ndprune::io::Checkpoint::new(ndprune::Sequential::new().with_child("fc", layer)?).save(&path)?;
    /// let files = CheckpointFiles::open(&path)?;
    /// assert_eq!(files.view()?.shard_of(0), 0);
    /// # Ok(()) }
    /// ```
    pub fn shard_of(&self, i: usize) -> usize {
        self.shards[i]
    }

    /// The tensor of that name.
    ///
    /// ```
    /// # use ndprune::io::{Checkpoint, CheckpointFiles};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let path = std::env::temp_dir().join("ndprune-doc-mv-get.safetensors");
    /// # Checkpoint::new(ndprune::Sequential::<f32>::new()).save(&path)?;
    /// assert!(CheckpointFiles::open(&path)?.view()?.get("fc.weight").is_none());
    /// # Ok(()) }
    /// ```
    pub fn get(&self, name: &str) -> Option<&TensorEntry<'a>> {
        self.position(name).map(|i| &self.entries[i])
    }

    /// The index in [`ModelView::entries`] of the tensor of that name.
    ///
    /// ```
    /// # use ndprune::io::CheckpointFiles;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let path = std::env::temp_dir().join("ndprune-doc-mv-pos.safetensors");
    /// # let layer = ndprune::Layer::new().with_parameter("bias", ndarray::ArrayD::<f32>::zeros(vec![2]))?;
    /// # ndprune::io::Checkpoint::new(ndprune::Sequential::new().with_child("fc", layer)?).save(&path)?;
    /// assert_eq!(CheckpointFiles::open(&path)?.view()?.position("fc.bias"), Some(0));
    /// # Ok(()) }
    /// ```
    pub fn position(&self, name: &str) -> Option<usize> {
        position_in(&self.entries, &self.by_name, name)
    }

    /// The header metadata (`__metadata__`) of shard `s`.
    ///
    /// ```
    /// # use ndprune::io::{Checkpoint, CheckpointFiles};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let path = std::env::temp_dir().join("ndprune-doc-mv-meta.safetensors");
    /// # Checkpoint::new(ndprune::Sequential::<f32>::new()).save(&path)?;
    /// assert!(CheckpointFiles::open(&path)?.view()?.metadata(0).is_none());
    /// # Ok(()) }
    /// ```
    pub fn metadata(&self, s: usize) -> Option<&BTreeMap<String, String>> {
        self.metadata.get(s).and_then(Option::as_ref)
    }

    /// The pruned tensors as PyTorch writes them, across shards: for each
    /// `X_orig` with an `X_mask`, both of a float dtype, the name `X` and
    /// the indices of `X_orig` and `X_mask`, sorted by name.
    ///
    /// ```
    /// # use ndprune::io::{Checkpoint, CheckpointFiles};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let path = std::env::temp_dir().join("ndprune-doc-mv-pairs.safetensors");
    /// # Checkpoint::new(ndprune::Sequential::<f32>::new()).save(&path)?;
    /// assert!(CheckpointFiles::open(&path)?.view()?.pruned_pairs().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn pruned_pairs(&self) -> Vec<(&str, usize, usize)> {
        pairs_in(&self.entries, &self.by_name)
    }
}

/// Whether the path's file name ends in `.safetensors.index.json`.
fn is_index_name(path: &Path) -> bool {
    path.file_name()
        .and_then(OsStr::to_str)
        .is_some_and(|n| n.ends_with(INDEX_SUFFIX) && n.len() > INDEX_SUFFIX.len())
}

/// Hears of the temporary directory a PyTorch input is converted into
/// ([`CheckpointFiles::open_watched`]; every method does nothing by
/// default). Feature `pth`.
///
/// ```
/// use ndprune::io::ConversionWatch;
/// struct Held(bool);
/// impl ConversionWatch for Held {
///     fn creating(&mut self) {
///         self.0 = true;
///     }
/// }
/// let mut h = Held(false);
/// h.creating();
/// assert!(h.0);
/// ```
#[cfg(feature = "pth")]
pub trait ConversionWatch {
    /// The temporary directory is about to be created.
    fn creating(&mut self) {}
    /// It was created at `dir` (`None`: creating it failed). It lives as
    /// long as the [`CheckpointFiles`] opened (or, on an error, until the
    /// open call returns).
    fn created(&mut self, _dir: Option<&Path>) {}
}

#[cfg(feature = "pth")]
impl ConversionWatch for () {}

/// Whether the path's file name ends in `.bin.index.json` (the index of
/// PyTorch shards, as transformers writes it).
fn is_bin_index_name(path: &Path) -> bool {
    const SUFFIX: &str = ".bin.index.json";
    path.file_name()
        .and_then(OsStr::to_str)
        .is_some_and(|n| n.ends_with(SUFFIX) && n.len() > SUFFIX.len())
}

/// Whether the path's extension is one `torch.save` files go by: `.bin`
/// (transformers' `pytorch_model.bin`), `.pth` or `.pt`.
fn is_torch_file_name(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e == "bin" || e == "pth" || e == "pt")
}

/// The safetensors name transformers gives the shard of a PyTorch shard:
/// its extension `.safetensors`, and a leading `pytorch_model` as `model`.
#[cfg(feature = "pth")]
fn safetensors_name_of(shard: &str) -> String {
    let stem = Path::new(shard)
        .file_stem()
        .and_then(OsStr::to_str)
        .unwrap_or(shard);
    let stem = match stem.strip_prefix("pytorch_model") {
        Some(rest) => format!("model{rest}"),
        None => stem.to_string(),
    };
    format!("{stem}.safetensors")
}

/// The regular files of `dir` (an index's directory) that are none of its
/// shards, no index and no other safetensors file: `config.json`,
/// tokenizer files. (A safetensors file the index does not list is no
/// part of the model: copied beside a pruned output it would be weights
/// that disagree with it, which transformers reads before an index.)
/// The regular files in `dir` that are no part of the checkpoint
/// (neither `index` nor a shard, no index, no safetensors file), split
/// into those to copy and the model's weights in other formats
/// ([`is_weight_twin`]), sorted.
fn other_files(
    dir: &Path,
    index: &Path,
    shard_paths: &[PathBuf],
) -> Result<(Vec<PathBuf>, Vec<PathBuf>), CheckpointError> {
    Ok(read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    })?
    .into_iter()
    .filter(|p| {
        p.file_name() != index.file_name()
            && !shard_paths.iter().any(|s| s.file_name() == p.file_name())
            && fs::metadata(p).is_ok_and(|m| m.is_file())
            && !is_index_name(p)
            && !is_bin_index_name(p)
            && p.extension() != Some(OsStr::new("safetensors"))
    })
    .partition(|p| !is_weight_twin(p)))
}

/// Whether `path` names transformers' weights in another format:
/// `pytorch_model*.bin`, `tf_model*.h5`, `flax_model*.msgpack`, or the
/// index of one of them.
fn is_weight_twin(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(OsStr::to_str) else {
        return false;
    };
    let name = name.strip_suffix(".index.json").unwrap_or(name);
    [
        ("pytorch_model", ".bin"),
        ("tf_model", ".h5"),
        ("flax_model", ".msgpack"),
    ]
    .iter()
    .any(|(stem, ext)| name.starts_with(stem) && name.ends_with(ext))
}

/// Whether `name` is one normal path component: no separator, not `.` or
/// `..`, not absolute, not empty.
fn is_plain_file_name(name: &str) -> bool {
    let mut components = Path::new(name).components();
    matches!(
        (components.next(), components.next()),
        (Some(Component::Normal(c)), None) if c == OsStr::new(name)
    )
}

/// The entries of a directory, sorted.
fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, CheckpointError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| CheckpointError::io(dir, "listing", e))? {
        out.push(
            entry
                .map_err(|e| CheckpointError::io(dir, "listing", e))?
                .path(),
        );
    }
    out.sort();
    Ok(out)
}

/// Reads an index: its `metadata` object and its `weight_map` entries
/// (tensor, shard file name) in file order.
#[allow(clippy::type_complexity)]
fn read_index(
    index: &Path,
) -> Result<(Map<String, Value>, Vec<(String, String)>), CheckpointError> {
    let bad = |reason: String| CheckpointError::BadIndex {
        path: index.to_path_buf(),
        reason,
    };
    let meta =
        fs::metadata(index).map_err(|e| CheckpointError::io(index, "reading the size of", e))?;
    if !meta.is_file() {
        return Err(bad("the index is not a regular file".into()));
    }
    if meta.len() > MAX_INDEX {
        return Err(bad(format!(
            "{} bytes, more than the {MAX_INDEX} an index may have",
            meta.len()
        )));
    }
    let text = fs::read(index).map_err(|e| CheckpointError::io(index, "reading", e))?;
    let doc: Value = serde_json::from_slice(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Value::Object(mut doc) = doc else {
        return Err(bad("not a JSON object".into()));
    };
    let metadata = match doc.remove("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(bad("`metadata` is not an object".into())),
    };
    let Some(Value::Object(map)) = doc.remove("weight_map") else {
        return Err(bad("no `weight_map` object".into()));
    };
    let mut listed = Vec::with_capacity(map.len());
    for (tensor, shard) in map {
        let Value::String(shard) = shard else {
            return Err(bad(format!("the shard of `{tensor}` is not a string")));
        };
        listed.push((tensor, shard));
    }
    Ok((metadata, listed))
}

/// The index beside `file` that lists it as a shard, if any.
fn index_listing(file: &Path) -> Result<Option<PathBuf>, CheckpointError> {
    let Some(name) = file.file_name().and_then(OsStr::to_str) else {
        return Ok(None);
    };
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // A directory that cannot be listed holds no index we could read.
    let Ok(entries) = read_dir(dir) else {
        return Ok(None);
    };
    let indexes = entries
        .into_iter()
        .filter(|p| is_index_name(p) || (cfg!(feature = "pth") && is_bin_index_name(p)));
    for index in indexes {
        // An index that does not parse lists nothing (and is reported if
        // it is ever opened).
        if let Ok((_, listed)) = read_index(&index) {
            if listed.iter().any(|(_, shard)| shard == name) {
                return Ok(Some(index));
            }
        }
    }
    Ok(None)
}
