"""``gkd-run``: whole experiments, distance matrices and predictions from the command line.

The commands are thin: they parse options, call :mod:`gkd.experiment` / :mod:`gkd.cache`, draw
progress on stderr and print results on stdout. A user error (missing file, bad option, bad
data) ends in one line on stderr and a non-zero exit code (2 for usage and missing data);
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, NoReturn

import numpy as np
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from gkd.distances import Metric
from gkd.teacher import DEFAULT_TEMPERATURE, MHAD_BLENDS, MHAD_LEAD

if TYPE_CHECKING:  # gkd.experiment imports torch: only where a command needs it
    from gkd.experiment import ExperimentResult, Reporter
    from gkd.train import EpochStats

app = typer.Typer(
    name="gkd-run",
    help=(
        "Geometric knowledge distillation for motion sequences: a Procrustes-DTW k-NN "
        "teacher, a directly trained transformer and a student distilled from the teacher."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_SIGNUM_HELP = (
    "gkd-run signum needs --data DIR. SIGNUM cannot be shipped with gkd: obtain the SIGNUM "
    "database of German Sign Language from its authors (TU Munich / RWTH Aachen), extract "
    "MediaPipe Holistic landmarks per frame (33 pose, 21 left-hand, 21 right-hand, x y z) and "
    "save them in DIR as X_train.npy, X_val.npy, X_test.npy ((N, 80, 225) float) with "
    "y_train.npy, y_val.npy, y_test.npy ((N,) int gloss labels), then run: "
    "gkd-run signum --data DIR"
)

# ----------------------------------------------------------------------------- options


def _positive_number(text: str, hint: str, expected: str = "a positive number") -> float:
    """``text`` as a finite number above zero; otherwise a usage error saying ``expected``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise typer.BadParameter(f"must be {expected}, got {text!r}", param_hint=hint)
    return value


Out = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Folder for results.md, results.json, plots/ and checkpoints/ "
        "(default: gkd-runs/NAME, NAME after the data set).",
        file_okay=False,
    ),
]
Epochs = Annotated[
    int | None,
    typer.Option(min=1, help="Training epochs per student (default: depends on the data set)."),
]
Seed = Annotated[int, typer.Option(help="First random seed of the students.")]
Seeds = Annotated[
    int,
    typer.Option(min=1, help="Number of seeds (seed, seed+1, ...); the table shows mean ± std."),
]
Ensemble = Annotated[
    int,
    typer.Option(
        min=1,
        help="Students per reported model: the mean of this many students' probabilities "
        "(seeds seed*N .. seed*N+N-1); inference costs N forward passes.",
    ),
]
Device = Annotated[
    Literal["auto", "cpu", "cuda"],
    typer.Option(help="Where the students train; auto takes the GPU when there is one."),
]
Threads = Annotated[
    int | None,
    typer.Option(min=1, help="CPU threads for distances and torch (default: all cores)."),
]
Quick = Annotated[bool, typer.Option("--quick", help="Few epochs: a check in a few minutes.")]
Refit = Annotated[
    bool,
    typer.Option(
        "--refit/--no-refit",
        help="Retrain each student on train + validation for the epochs chosen on validation "
        "and report that model (--no-refit: the model selected on validation).",
    ),
]
Resume = Annotated[
    bool,
    typer.Option(
        "--resume/--retrain",
        help="Reuse the students an earlier run left in --out/checkpoints with the same data "
        "and settings, so a stopped run goes on where it stopped; with another --refit-scale "
        "only the refits are trained (--retrain: train all).",
    ),
]

STUDENT_NAMES = ("direct", "distilled")  # gkd.experiment.STUDENTS, without importing torch
REFIT_SCALES = {"direct": 2.0, "distilled": 1.5}  # gkd.experiment.REFIT_SCALES, likewise


def _check_students(text: str) -> str:
    """Reject an unknown or empty ``--students`` while parsing, as a usage error."""
    names = _name_list(text)
    unknown = [name for name in names if name not in STUDENT_NAMES]
    if unknown or not names:
        raise typer.BadParameter(
            f"expected direct, distilled or both separated by a comma, got {text!r}",
            param_hint="'--students'",
        )
    return text


Students = Annotated[
    str,
    typer.Option(
        callback=_check_students,
        help="Students to train and report: direct, distilled or both (comma-separated). One "
        "alone halves the training, e.g. to add seeds to one method.",
    ),
]


def _temperature(text: str) -> float | None:
    """``--temperature``: a positive number, or ``auto`` (None: chosen on validation)."""
    if text.strip().lower() == "auto":
        return None
    return _positive_number(text, "'--temperature'", "a positive number or 'auto'")


def _check_temperature(text: str) -> str:
    """Reject a bad ``--temperature`` while parsing, as a usage error."""
    _temperature(text)
    return text


def _refit_scale(text: str | None) -> float | dict[str, float] | None:
    """``--refit-scale``: one positive number for every student, or ``student=number`` pairs
    separated by commas (the students not named keep their defaults)."""
    if text is None:
        return None
    hint = "'--refit-scale'"
    if "=" not in text:
        return _positive_number(text, hint)
    scales: dict[str, float] = {}
    for item in _name_list(text):
        name, _, value = (part.strip() for part in item.partition("="))
        if name not in STUDENT_NAMES:
            raise typer.BadParameter(
                f"expected a number or direct=N,distilled=N, got student {name!r} in {text!r}",
                param_hint=hint,
            )
        scales[name] = _positive_number(value, hint)
    return scales


def _check_refit_scale(text: str | None) -> str | None:
    """Reject a bad ``--refit-scale`` while parsing, as a usage error."""
    _refit_scale(text)
    return text


RefitScale = Annotated[
    str | None,
    typer.Option(
        callback=_check_refit_scale,
        metavar="SCALE",
        help="The refit trains for this many times the epochs chosen on validation: one number "
        "for both students, or one per student, e.g. distilled=2 (default: "
        + ",".join(f"{short}={scale:g}" for short, scale in REFIT_SCALES.items())
        + ", chosen by refit checks on UTD-MHAD training subjects).",
    ),
]
Temperature = Annotated[
    str,
    typer.Option(
        callback=_check_temperature,
        help="Soft-target temperature on min-max scaled distances (default: "
        f"{DEFAULT_TEMPERATURE:g}, chosen by cross-validation on UTD-MHAD training subjects), "
        "or 'auto': the candidate with the lowest validation cross-entropy.",
    ),
]
TrainConfigOption = Annotated[
    str | None,
    typer.Option(
        "--train-config",
        help="Student settings as a JSON object or a .json file of TrainConfig fields, e.g. "
        '\'{"augment": true, "frames_per_token": 2}\'; --epochs and --quick still apply.',
        show_default=False,
    ),
]
CacheDir = Annotated[
    Path | None,
    typer.Option(
        envvar="GKD_CACHE_DIR",
        file_okay=False,
        help="Distance cache folder (default: ~/.cache/gkd).",
        show_default=False,
    ),
]
Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress or messages on stderr; results only.")
]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")]
MetricOption = Annotated[Metric, typer.Option(help="Frame cost of the teacher's DTW.")]
Band = Annotated[
    int | None,
    typer.Option(min=0, help="Sakoe-Chiba band half-width in frames (default: no band)."),
]
Normalize = Annotated[
    bool, typer.Option("--normalize", help="Divide each distance by its warping path's length.")
]
Blends = Annotated[
    float,
    typer.Option(
        min=0,
        help="Blends of two training sequences per training sequence that the teacher labels "
        "for the distilled student (0: none). 2, with --lead 10, won on UTD-MHAD's training "
        "subjects and is gkd-run mhad's default. Not with the hand metric.",
    ),
]
Lead = Annotated[
    float,
    typer.Option(
        min=0,
        help="Frames ahead along each landmark's velocity that the teacher's frames also carry, "
        "so it compares motion as well as pose (procrustes and procrustes-sum; 0: poses alone). "
        "10 won on UTD-MHAD's training subjects at 30 frames a second and is gkd-run mhad's "
        "default; scale it to your rate.",
    ),
]
Groups = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated landmark groups, one matrix each, summed "
        "(e.g. left_hand,right_hand) (default: all landmarks).",
    ),
]


# ----------------------------------------------------------------------------- output


def _fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """One line on stderr, then exit with ``code``."""
    line = " ".join(str(message).split())
    typer.echo(f"gkd-run: error: {line}", err=True)
    raise typer.Exit(code)


# What a stopped command leaves for its rerun to pick up, for the Ctrl-C message.
KEPT_BY_EXPERIMENTS = "finished blocks of distances and trained students"
KEPT_BY_DISTANCES = "finished blocks of distances"


@contextlib.contextmanager
def _errors(debug: bool, kept: str | None = None) -> Iterator[None]:
    """Turn exceptions into one line and an exit code; ``debug`` lets them through.

    ``kept`` names what an interrupted command has saved, which its rerun resumes from.
    """
    try:
        yield
    except (typer.Exit, typer.Abort, typer.TyperException):
        raise  # typer reports usage errors itself (exit code 2)
    except Exception as error:
        if debug:
            raise
        if isinstance(error, FileNotFoundError):
            _fail(str(error), EXIT_USAGE)
        if isinstance(error, (ValueError, TypeError, OSError)):
            _fail(str(error))
        _fail(f"{type(error).__name__}: {error} (rerun with --debug for the traceback)")
    except KeyboardInterrupt:
        if debug:
            raise
        resume = f"; {kept} are kept: run the same command again to resume" if kept else ""
        _fail(f"interrupted{resume}", EXIT_INTERRUPTED)


class _Rate(ProgressColumn):
    """Items per second (or seconds per item, for slow items), once there is a measurement."""

    def __init__(self, unit: str, *, per_item: bool = False) -> None:
        super().__init__()
        self.unit = unit
        self.per_item = per_item

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if not speed:
            return Text("", style="progress.data.speed")
        if self.per_item:
            text = f"{1.0 / speed:.1f} s/{self.unit}"
        else:
            text = f"{speed:,.0f} {self.unit}s/s" if speed >= 100 else f"{speed:.2g} {self.unit}s/s"
        return Text(text, style="progress.data.speed")


class RichReporter:
    """Messages and rich progress bars (with rate and ETA) on stderr."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def message(self, text: str) -> None:
        """Print a note."""
        self.console.print(f"[dim]·[/dim] {text}", highlight=False)

    @contextlib.contextmanager
    def distances(self, description: str) -> Iterator[Callable[[int, int], None]]:
        """A bar over pairs of sequences."""
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("pairs"),
            _Rate("pair"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        ) as bar:
            task = bar.add_task(description, total=None)

            def update(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            yield update

    @contextlib.contextmanager
    def training(self, description: str, epochs: int) -> Iterator[Callable[[EpochStats], None]]:
        """A bar over epochs, showing the last validation accuracy."""
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("epochs"),
            TextColumn("{task.fields[score]}"),
            _Rate("epoch", per_item=True),
            TimeRemainingColumn(),
            console=self.console,
        ) as bar:
            task = bar.add_task(description, total=epochs, score="")

            def update(stats: EpochStats) -> None:
                accuracy = stats.validation_accuracy
                score = "" if accuracy is None else f"val {100 * accuracy:.1f} %"
                bar.update(task, completed=stats.epoch, score=score)

            yield update


def _reporter(quiet: bool) -> Reporter:
    from gkd.experiment import SilentReporter

    if quiet:
        return SilentReporter()
    return RichReporter(Console(stderr=True))


def _note(quiet: bool, text: str) -> None:
    if not quiet:
        Console(stderr=True).print(text, highlight=False)


def _seeds(seed: int, count: int) -> list[int]:
    return list(range(seed, seed + count))


def _check_device(device: str) -> None:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise typer.BadParameter("no CUDA GPU is available here", param_hint="'--device'")


def _int_list(text: str | None, option: str) -> list[int] | None:
    """Subject ids from "6,7,8" or "6 7 8"."""
    if text is None:
        return None
    items = [item for item in re.split(r"[,\s]+", text.strip()) if item]
    try:
        values = [int(item) for item in items]
    except ValueError:
        raise typer.BadParameter(
            f"expected whole numbers separated by commas, got {text!r}", param_hint=option
        ) from None
    if not values:
        raise typer.BadParameter("name at least one subject", param_hint=option)
    return values


def _train_settings(text: str | None) -> dict[str, object] | None:
    """TrainConfig fields from inline JSON or a JSON file (checked by the experiment)."""
    if text is None:
        return None
    source = text.strip()
    if not source.startswith("{"):
        path = Path(source).expanduser()
        if not path.is_file():
            raise typer.BadParameter(
                f"{source} is neither a JSON object nor an existing file",
                param_hint="'--train-config'",
            )
        source = path.read_text(encoding="utf-8")
    try:
        values = json.loads(source)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(
            f"not valid JSON ({error})", param_hint="'--train-config'"
        ) from None
    if not isinstance(values, dict):
        raise typer.BadParameter("must be a JSON object", param_hint="'--train-config'")
    return values


def _name_list(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    return tuple(item for item in (part.strip() for part in text.split(",")) if item)


def _finish(result: ExperimentResult, quiet: bool) -> None:
    typer.echo(result.markdown, nl=False)
    if result.out is not None:
        _note(quiet, f"[green]results written to {result.out}[/green] ({result.seconds:.0f} s)")


def _command_line() -> dict[str, object]:
    return {"command": " ".join(["gkd-run", *sys.argv[1:]])}


# ----------------------------------------------------------------------------- commands


@app.command()
def mhad(
    protocol: Annotated[
        Literal["paper", "cross-subject"],
        typer.Option(
            help="paper: subjects 1-5 train, 6-8 test; cross-subject: 1,3,5,7 / 2,4,6,8. "
            "The last training subject is the validation split."
        ),
    ] = "paper",
    out: Out = None,
    epochs: Epochs = None,
    seed: Seed = 0,
    seeds: Seeds = 1,
    ensemble: Ensemble = 1,
    students: Students = "direct,distilled",
    device: Device = "auto",
    threads: Threads = None,
    quick: Quick = False,
    refit: Refit = True,
    refit_scale: RefitScale = None,
    resume: Resume = True,
    temperature: Temperature = f"{DEFAULT_TEMPERATURE:g}",
    lead: Lead = MHAD_LEAD,
    blends: Blends = MHAD_BLENDS,
    train_config: TrainConfigOption = None,
    cache_dir: CacheDir = None,
    quiet: Quiet = False,
    debug: Debug = False,
    per_class_limit: Annotated[
        int | None,
        typer.Option(min=1, hidden=True, help="Testing: first N sequences per subject and action."),
    ] = None,
    class_limit: Annotated[
        int | None, typer.Option(min=2, hidden=True, help="Testing: first N actions only.")
    ] = None,
) -> None:
    """The whole experiment on the bundled UTD-MHAD skeletons (27 actions, 8 subjects).

    Teacher distances (cached), k-NN with k chosen on validation, the directly trained
    transformer and the distilled student; prints the table and writes results, plots and
    checkpoints under --out. The distilled student learns from two teacher-labelled blends per
    training sequence (--blends), which triples its training: the whole run took 31 minutes on
    2 idle cores (AMD EPYC), a fresh distance cache included; --quick about three.
    """
    with _errors(debug, KEPT_BY_EXPERIMENTS):
        _check_device(device)
        from gkd.experiment import TeacherConfig, run_mhad

        result = run_mhad(
            protocol=protocol,
            quick=quick,
            epochs=epochs,
            seeds=_seeds(seed, seeds),
            ensemble=ensemble,
            students=_name_list(students),
            teacher=TeacherConfig(temperature=_temperature(temperature), lead=lead, blends=blends),
            refit=refit,
            refit_scale=_refit_scale(refit_scale),
            resume=resume,
            train_config=_train_settings(train_config),
            out=out or Path("gkd-runs") / f"mhad-{protocol}",
            cache_dir=cache_dir,
            threads=threads,
            device=device,
            per_class_limit=per_class_limit,
            class_limit=class_limit,
            reporter=_reporter(quiet),
            metadata=_command_line(),
        )
        _finish(result, quiet)


@app.command()
def signum(
    data: Annotated[
        Path | None,
        typer.Option(
            help="Folder with X_train.npy, y_train.npy, X_val.npy, y_val.npy, X_test.npy, "
            "y_test.npy (the paper's layout).",
            show_default=False,
        ),
    ] = None,
    out: Out = None,
    epochs: Epochs = None,
    seed: Seed = 0,
    seeds: Seeds = 1,
    ensemble: Ensemble = 1,
    students: Students = "direct,distilled",
    device: Device = "auto",
    threads: Threads = None,
    quick: Quick = False,
    refit: Refit = True,
    refit_scale: RefitScale = None,
    resume: Resume = True,
    temperature: Temperature = f"{DEFAULT_TEMPERATURE:g}",
    train_config: TrainConfigOption = None,
    cache_dir: CacheDir = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """The whole experiment on SIGNUM landmarks, which you bring (see --data).

    Teacher as in the paper: the hand metric on each hand, the two matrices summed; the
    students read both hands.
    """
    with _errors(debug, KEPT_BY_EXPERIMENTS):
        if data is None:
            _fail(_SIGNUM_HELP, EXIT_USAGE)
        _check_device(device)
        from gkd.experiment import TeacherConfig, run_signum

        result = run_signum(
            data=data,
            quick=quick,
            epochs=epochs,
            seeds=_seeds(seed, seeds),
            ensemble=ensemble,
            students=_name_list(students),
            teacher=TeacherConfig(
                metric="hand",
                groups=("left_hand", "right_hand"),
                temperature=_temperature(temperature),
            ),
            refit=refit,
            refit_scale=_refit_scale(refit_scale),
            resume=resume,
            train_config=_train_settings(train_config),
            out=out or Path("gkd-runs") / "signum",
            cache_dir=cache_dir,
            threads=threads,
            device=device,
            reporter=_reporter(quiet),
            metadata=_command_line(),
        )
        _finish(result, quiet)


@app.command()
def fit(
    data: Annotated[
        Path, typer.Argument(help="Sequences in the generic .npz format (see data/FORMATS.md).")
    ],
    test_subjects: Annotated[
        str,
        typer.Option(
            help="Subjects held out for the final numbers, e.g. 6,7,8.", show_default=False
        ),
    ],
    validation_subjects: Annotated[
        str | None,
        typer.Option(help="Subjects held out for every choice (default: the last other one)."),
    ] = None,
    metric: MetricOption = "procrustes",
    band: Band = None,
    normalize: Normalize = False,
    lead: Lead = 0.0,
    blends: Blends = 0.0,
    groups: Groups = None,
    student_landmarks: Annotated[
        str | None,
        typer.Option(help="Comma-separated groups the students read (default: all landmarks)."),
    ] = None,
    out: Out = None,
    epochs: Epochs = None,
    seed: Seed = 0,
    seeds: Seeds = 1,
    ensemble: Ensemble = 1,
    students: Students = "direct,distilled",
    device: Device = "auto",
    threads: Threads = None,
    quick: Quick = False,
    refit: Refit = True,
    refit_scale: RefitScale = None,
    resume: Resume = True,
    temperature: Temperature = f"{DEFAULT_TEMPERATURE:g}",
    train_config: TrainConfigOption = None,
    cache_dir: CacheDir = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """The whole experiment on your own data, split by subject."""
    with _errors(debug, KEPT_BY_EXPERIMENTS):
        test = _int_list(test_subjects, "'--test-subjects'")
        validation = _int_list(validation_subjects, "'--validation-subjects'")
        _check_device(device)
        from gkd.experiment import TeacherConfig, run_npz

        assert test is not None
        result = run_npz(
            path=data,
            test_subjects=test,
            validation_subjects=validation,
            teacher=TeacherConfig(
                metric=metric,
                band=band,
                normalize=normalize,
                lead=lead,
                blends=blends,
                groups=_name_list(groups),
                temperature=_temperature(temperature),
            ),
            student_landmarks=_name_list(student_landmarks) or None,
            quick=quick,
            epochs=epochs,
            seeds=_seeds(seed, seeds),
            ensemble=ensemble,
            students=_name_list(students),
            refit=refit,
            refit_scale=_refit_scale(refit_scale),
            resume=resume,
            train_config=_train_settings(train_config),
            out=out or Path("gkd-runs") / data.stem,
            cache_dir=cache_dir,
            threads=threads,
            device=device,
            reporter=_reporter(quiet),
            metadata=_command_line(),
        )
        _finish(result, quiet)


@app.command()
def distances(
    input: Annotated[
        Path, typer.Argument(help="Sequences in the generic .npz format.", show_default=False)
    ],
    output: Annotated[Path, typer.Argument(help="Where to write the (N, N) float64 .npy.")],
    metric: MetricOption = "procrustes",
    band: Band = None,
    normalize: Normalize = False,
    lead: Lead = 0.0,
    groups: Groups = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="Engine threads (default: all cores).")
    ] = None,
    block_rows: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Rows per resumable block (default: ~16,000 pairs, >= 1,024 row frames a block).",
        ),
    ] = None,
    cache_dir: CacheDir = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Only the teacher's distance matrix between all sequences of a file, to .npy.

    Computed in blocks kept in the cache: if the run is stopped (Ctrl-C or killed), the same
    command resumes from the finished blocks and gives the same matrix bit for bit.
    """
    with _errors(debug, KEPT_BY_DISTANCES):
        from gkd.cache import DistanceCache
        from gkd.datasets import load_npz
        from gkd.distances import check_lead, with_motion

        check_lead(lead, metric, what="--lead")
        dataset = load_npz(input)
        parts = [dataset.select_landmarks(g) for g in _name_list(groups)] or [dataset]
        cache = DistanceCache(cache_dir)
        # No experiment here: the bar is drawn directly, without importing torch.
        reporter = None if quiet else RichReporter(Console(stderr=True))
        total = None
        for index, part in enumerate(parts):
            label = f"{metric} DTW" + (f" ({_name_list(groups)[index]})" if groups else "")
            bar = reporter.distances(label) if reporter else contextlib.nullcontext(None)
            with bar as callback:
                frames = part.sequences
                if lead:
                    frames = with_motion(frames, lengths=part.lengths, lead=lead, name=str(input))
                matrix = cache.pairwise(
                    frames,
                    lengths=part.lengths,
                    metric=metric,
                    band=band,
                    normalize=normalize,
                    threads=threads,
                    block_rows=block_rows,
                    progress=callback,
                    mmap=True,
                )
            total = matrix if total is None else total + matrix
        assert total is not None
        output.parent.mkdir(parents=True, exist_ok=True)
        temp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
        try:
            with temp.open("wb") as handle:
                np.save(handle, np.asarray(total), allow_pickle=False)
            os.replace(temp, output)
        finally:
            temp.unlink(missing_ok=True)
        _note(quiet, f"[green]wrote {output}[/green] ({total.shape[0]} x {total.shape[1]})")


@app.command()
def predict(
    checkpoint: Annotated[
        Path, typer.Argument(help="A student checkpoint (checkpoints/*.pt of an experiment).")
    ],
    data: Annotated[Path, typer.Argument(help="Sequences in the generic .npz format.")],
    members: Annotated[
        list[Path] | None,
        typer.Option(
            "--with",
            help="Further checkpoints of the same ensemble (repeat the option); the class "
            "probabilities of all are averaged.",
        ),
    ] = None,
    csv_output: Annotated[
        bool, typer.Option("--csv", help="Print CSV instead of a table.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Write the CSV to this file instead of stdout."),
    ] = None,
    device: Annotated[
        Literal["auto", "cpu", "cuda"], typer.Option(help="Where the model runs.")
    ] = "cpu",
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Predicted class and its probability for every sequence of a file."""
    with _errors(debug):
        _check_device(device)
        from gkd.experiment import predict_file

        result = predict_file(checkpoint=[checkpoint, *(members or [])], data=data, device=device)
        names = result.class_names
        header = ["index", "predicted", "probability"]
        if result.labels is not None:
            header.append("true")
        rows = []
        for i, (cls, p) in enumerate(zip(result.predicted, result.confidence, strict=True)):
            row = [str(i), names[int(cls)], f"{float(p):.4f}"]
            if result.labels is not None:
                row.append(names[int(result.labels[i])])
            rows.append(row)
        if csv_output or output is not None:
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
            if output is not None:
                output.parent.mkdir(parents=True, exist_ok=True)
                output.write_text(buffer.getvalue(), encoding="utf-8")
                _note(quiet, f"[green]wrote {output}[/green] ({len(rows)} rows)")
            else:
                typer.echo(buffer.getvalue(), nl=False)
        else:
            table = Table(*header, box=None)
            for row in rows:
                table.add_row(*row)
            Console(file=sys.stdout, soft_wrap=True).print(table)
        if result.labels is not None:
            accuracy = float(np.mean(result.predicted == result.labels))
            _note(quiet, f"accuracy against the file's labels: {100 * accuracy:.1f} %")


def main(argv: Sequence[str] | None = None, *, prog_name: str = "gkd-run") -> None:
    """Entry point of the ``gkd-run`` console script (and ``python -m gkd``)."""
    app(args=list(argv) if argv is not None else None, prog_name=prog_name)
