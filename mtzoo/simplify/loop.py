r"""DP-GEN's "simplify" loop: transfer learning by relabelling only the frames a committee disagrees on.

Given a pool of frames labelled at an old level of theory, a model trained on it, and a labeller
at the new level (any ASE calculator), the loop labels a small part of the pool at the new level:

iteration 0
    ``01.model_devi``: ``init_pick_number`` frames of the pool picked at random (seeded);
    ``02.fp``: those frames labelled at the new level.
iteration :math:`k \ge 1`
    ``00.train``: ``numb_models`` members fine-tuned from the old model on every frame labelled
    so far (:func:`mtzoo.zoo.finetune.finetune`, head ``copy`` of the old head with its energy bias
    shifted to the new data, the descriptor frozen and only the layers ``fitting_net.trainable``
    names trained; member :math:`m` has seed ``seed + m``, which sets its held-out split and
    its batch order);
    ``01.model_devi``: the committee's deviation (:mod:`mtzoo.simplify.model_devi`) on the frames
    still in the pool, written as ``model_devi.out``; each frame is *failed* if
    :math:`\epsilon_F \ge` ``f_trust_hi`` or :math:`\epsilon_E \ge` ``e_trust_hi``, else a
    *candidate* if :math:`\epsilon_F \ge` ``f_trust_lo`` or :math:`\epsilon_E \ge` ``e_trust_lo``,
    else *accurate* (:math:`\epsilon_F = ` ``max_devi_f``, :math:`\epsilon_E = ` ``devi_e``);
    up to ``min(iter_pick_number, fp_task_max)`` candidates are picked at random (seeded by
    ``seed`` and :math:`k`); accurate frames leave the pool, the other candidates and the failed
    frames stay (as in DP-GEN);
    ``02.fp``: the picked frames labelled.

The loop stops when an iteration picks nothing (no candidate, or fewer than ``fp_task_min``);
that iteration's committee is the result.  Candidates none but failed frames left is an error
(raise ``f_trust_hi`` or train longer), as in DP-GEN.  It also stops after ``max_iter``
iterations (not converged).

Every step writes its results into its folder and then appends ``iter step`` to
``record.simplify`` (rewritten atomically), so an interrupted run started again resumes at the
first step not recorded; a step found half done is redone from scratch, except that members
of ``00.train`` whose ``model.pth`` exists (written atomically) are kept.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from mtzoo import keys as K
from mtzoo.simplify.config import SimplifyConfig, parse_simplify

STEPS = ("00.train", "01.model_devi", "02.fp")
RECORD = "record.simplify"
SUMMARY = "simplify_summary.json"


class SimplifyError(ValueError):
    """The loop cannot go on (e.g. failed frames but no candidates); one line, names what to change."""


def iter_name(k: int) -> str:
    return f"iter.{k:06d}"


def _write_json(obj, path: Path) -> None:
    from mtzoo.training.checkpoint import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json.dumps(obj, indent=1) + "\n", path)


def read_record(workdir: str | Path) -> tuple[int, int] | None:
    """The last recorded ``(iteration, step)`` of a run folder, or None for a fresh one."""
    path = Path(workdir) / RECORD
    if not path.exists():
        return None
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    return (int(lines[-1][0]), int(lines[-1][1])) if lines else None


def _record(workdir: Path, k: int, j: int) -> None:
    from mtzoo.training.checkpoint import atomic_write_text

    path = workdir / RECORD
    old = path.read_text() if path.exists() else ""
    atomic_write_text(old + f"{k} {j}\n", path)


def classify(max_devi_f: np.ndarray, devi_e: np.ndarray, cfg: SimplifyConfig) -> np.ndarray:
    """Per frame 0 (accurate), 1 (candidate) or 2 (failed) by the trust windows (DP-GEN's rule).

    Parameters
    ----------
    max_devi_f, devi_e : np.ndarray
        ``[n_frames]`` force (eV/A) and energy (eV/atom) deviations.
    """
    f, e = np.asarray(max_devi_f), np.asarray(devi_e)
    failed = (f >= cfg.f_trust_hi) | (e >= cfg.e_trust_hi)
    cand = ~failed & ((f >= cfg.f_trust_lo) | (e >= cfg.e_trust_lo))
    return np.where(failed, 2, np.where(cand, 1, 0))


def pick(candidates: list, number: int, seed: int, iteration: int) -> tuple[list, list]:
    """``(picked, not picked)``: at most ``number`` of ``candidates``, at random (seeded by ``seed`` and ``iteration``)."""
    rng = np.random.default_rng([int(seed), int(iteration)])
    order = rng.permutation(len(candidates))
    return [candidates[i] for i in order[:number]], [candidates[i] for i in order[number:]]


class Simplify:
    """One run of the loop in a folder (see the module docstring); :meth:`run` goes to the end.

    Parameters
    ----------
    config : SimplifyConfig, dict or path
        The simplify.json (:func:`mtzoo.simplify.config.parse_simplify`).
    workdir : path
        Run folder (``iter.*``, ``record.simplify``, ``simplify_summary.json``).
    log : callable
        Called with one line per event (default: nothing).
    """

    def __init__(self, config, workdir: str | Path = ".", log=None):
        self.cfg = config if isinstance(config, SimplifyConfig) else parse_simplify(config)
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = log if log is not None else (lambda *a: None)
        from mtzoo.data.readers import load_systems
        from mtzoo.zoo.frozen import load_model

        self.pool = load_systems(self.cfg.pick_data)
        self.pool_size = sum(s.nframes for s in self.pool)
        old = load_model(self.cfg.model)
        if list(old.type_map) != list(self.cfg.type_map):
            raise SimplifyError(f"type_map {self.cfg.type_map} differs from the old model's {list(old.type_map)}")
        self.old_head = old.resolve_head(self.cfg.model_head)
        if self.cfg.init_pick_number > self.pool_size:
            raise SimplifyError(f"init_pick_number {self.cfg.init_pick_number} > the {self.pool_size} frames of pick_data")
        self._labeller = None

    # ------------------------------------------------------------------ folders and state
    def path(self, k: int, j: int) -> Path:
        return self.workdir / iter_name(k) / STEPS[j]

    def picks(self, k: int) -> dict:
        return json.loads((self.path(k, 1) / "pick.json").read_text())

    def members(self, k: int) -> list[dict]:
        return json.loads((self.path(k, 0) / "members.json").read_text())

    def labelled_data(self, upto: int) -> list[str]:
        """Folders of the frames labelled in iterations ``< upto``."""
        out = []
        for k in range(upto):
            f = self.path(k, 2) / "labelled.json"
            if f.exists():
                out += json.loads(f.read_text())["systems"]
        return out

    def frames(self, ids: list) -> list:
        """Systems of the pool frames ``ids`` ([[system, frame], ...]), one per pool system, frames in order."""
        from mtzoo.data.writers import subset

        by_sys: dict[int, list[int]] = {}
        for s, f in ids:
            by_sys.setdefault(int(s), []).append(int(f))
        return [(s, subset(self.pool[s], sorted(fs), f"{self.pool[s].name}")) for s, fs in sorted(by_sys.items())]

    # ------------------------------------------------------------------ the three steps
    def train(self, k: int) -> None:
        """``00.train`` of iteration ``k >= 1``: the committee fine-tuned on every frame labelled so far."""
        from mtzoo.zoo.finetune import finetune

        data = self.labelled_data(k)
        s = self.cfg.train
        out = []
        for m in range(self.cfg.numb_models):
            wd = self.path(k, 0) / f"{m:03d}"
            if self.cfg.training_init_model and k >= 2:
                prev = self.members(k - 1)[m]
                base, init_from, head = prev["model"], prev["head"], f"simplify_{k}"
            else:
                base, init_from, head = self.cfg.model, self.old_head, "simplify"
            model_file = wd / "model.pth"
            if model_file.exists():
                self.log(f"{iter_name(k)} 00.train: member {m} already trained ({model_file}), kept")
            else:
                if wd.exists():
                    shutil.rmtree(wd)  # a member interrupted while training: start it again
                layers = s.fitting_trainable if isinstance(s.fitting_trainable, list) else None
                finetune(base, data, head_name=head, strategy="full" if s.descriptor_trainable else "freeze",
                         init_from=init_from, head_mode="copy", trainable_layers=layers, steps=s.numb_steps,
                         lr=s.start_lr, batch_size=s.batch_size, loss=s.loss, seed=self.cfg.seed + m, workdir=wd,
                         output=model_file, progress=False)
                self.log(f"{iter_name(k)} 00.train: member {m} fine-tuned ({s.numb_steps} steps, seed "
                         f"{self.cfg.seed + m}) on {len(data)} labelled systems -> {model_file}")
            out.append({"model": str(model_file), "head": head, "seed": self.cfg.seed + m})
        _write_json(out, self.path(k, 0) / "members.json")

    def model_devi(self, k: int) -> dict:
        """``01.model_devi``: the initial random pick (``k = 0``) or the committee's deviation and pick."""
        from mtzoo.simplify.model_devi import COLUMNS, model_devi, write_model_devi_out
        from mtzoo.zoo.frozen import load_model

        where = self.path(k, 1)
        if k == 0:
            every = [[s, f] for s, sys in enumerate(self.pool) for f in range(sys.nframes)]
            picked, rest = pick(every, self.cfg.init_pick_number, self.cfg.seed, 0)
            res = {"iteration": 0, "init_pick": True, "evaluated": len(every), "accurate": 0,
                   "candidate": len(every), "failed": 0, "picked": picked, "rest": rest, "accurate_frames": []}
        else:
            rest_in = self.picks(k - 1)["rest"]
            res = {"iteration": k, "init_pick": False, "evaluated": len(rest_in)}
            ids, cls = [], []
            if rest_in:
                committee = [(load_model(m["model"]), m["head"]) for m in self.members(k)]
                parts = self.frames(rest_in)
                devis = model_devi(committee, [sys for _, sys in parts])
                # the step column: the frame's index in its pool system
                kept = [np.sort(np.array([f for s2, f in rest_in if s2 == s])) for s, _ in parts]
                for d, frames_s in zip(devis, kept):
                    d[:, 0] = frames_s
                write_model_devi_out(devis, where / "model_devi.out",
                                     [f"{self.pool[s].name}" for s, _ in parts])
                fi, ei = COLUMNS.index("max_devi_f"), COLUMNS.index("devi_e")
                for (s, _), d in zip(parts, devis):
                    ids += [[s, int(f)] for f in d[:, 0]]
                    cls.append(classify(d[:, fi], d[:, ei], self.cfg))
            cls = np.concatenate(cls) if cls else np.zeros(0, dtype=int)
            cands = [i for i, c in zip(ids, cls) if c == 1]
            failed = [i for i, c in zip(ids, cls) if c == 2]
            res.update(accurate=int((cls == 0).sum()), candidate=len(cands), failed=len(failed))
            if not cands and failed:
                raise SimplifyError(f"{iter_name(k)}: no candidate but {len(failed)} failed frames (max_devi_f >= "
                                    f"f_trust_hi {self.cfg.f_trust_hi:g} or devi_e >= e_trust_hi); raise f_trust_hi "
                                    "or train longer")
            picked, rest = pick(cands, self.cfg.per_iteration, self.cfg.seed, k)
            if len(picked) < self.cfg.fp_task_min:
                picked, rest = [], cands
            res.update(picked=picked, rest=rest + failed,
                       accurate_frames=[i for i, c in zip(ids, cls) if c == 0])
        res["converged"] = k > 0 and not res["picked"]
        _write_json(res, where / "pick.json")
        self.log(f"{iter_name(k)} 01.model_devi: " + (
            f"initial pick of {len(res['picked'])} random frames of {res['evaluated']}" if k == 0 else
            f"{res['evaluated']} frames: {res['accurate']} accurate, {res['candidate']} candidates, "
            f"{res['failed']} failed; picked {len(res['picked'])}" + (" -> converged" if res["converged"] else "")))
        return res

    def labeller(self):
        if self._labeller is None and not self.cfg.labeled:
            from mtzoo.simplify.labelers import make_calculator

            self._labeller = make_calculator(self.cfg.fp_calculator)
        return self._labeller

    def fp(self, k: int) -> None:
        """``02.fp``: the picked frames labelled at the new level, one DeePMD system per pool system."""
        from mtzoo.data.writers import write_deepmd
        from mtzoo.simplify.labelers import label_system

        where = self.path(k, 2)
        if where.exists():
            shutil.rmtree(where)  # half-written by an interrupted run
        written = []
        for s, sys in self.frames(self.picks(k)["picked"]):
            if self.cfg.labeled:
                if not (sys.has_label(K.ENERGY) and sys.has_label(K.FORCES)):
                    raise SimplifyError(f"labeled is true but {sys.name} lacks energy or force labels")
                done = sys
            else:
                done = label_system(sys, self.labeller())
            written.append(str(write_deepmd(done, where / f"data.{s:03d}")))
        _write_json({"systems": written, "frames": len(self.picks(k)["picked"])}, where / "labelled.json")
        self.log(f"{iter_name(k)} 02.fp: labelled {len(self.picks(k)['picked'])} frames"
                 + (" (labels of pick_data: labeled)" if self.cfg.labeled else f" with {self.cfg.fp_calculator}"))

    # ------------------------------------------------------------------ driver
    def run(self) -> dict:
        """Run (or resume) the loop to its end; returns :meth:`summary`."""
        last = read_record(self.workdir)
        if last is not None:
            self.log(f"resuming after {iter_name(last[0])} {STEPS[last[1]]} (from {self.workdir / RECORD})")
        k0, j0 = (0, 0) if last is None else ((last[0] + 1, 0) if last[1] == 2 else (last[0], last[1] + 1))
        if last is not None and last[1] >= 1 and self.picks(last[0])["converged"]:
            k0 = self.cfg.max_iter  # finished before: only the summary
        for k in range(k0, self.cfg.max_iter):
            for j in range(j0 if k == k0 else 0, 3):
                if j == 0 and k > 0:
                    self.train(k)
                elif j == 1:
                    self.model_devi(k)
                elif j == 2 and not self.picks(k)["converged"]:
                    self.fp(k)
                _record(self.workdir, k, j)
            if self.picks(k)["converged"]:
                break
        summary = self.summary()
        _write_json(summary, self.workdir / SUMMARY)
        return summary

    def summary(self) -> dict:
        """Per iteration: frames evaluated, accurate, candidates, failed, picked; the labelled fraction.

        ``converged`` is true when the last iteration picked nothing; ``committee`` lists its
        members (``{"model", "head"}``).
        """
        rows, labelled, k = [], 0, 0
        while (self.path(k, 1) / "pick.json").exists():
            p = self.picks(k)
            labelled += len(p["picked"])
            rows.append({"iteration": k, "evaluated": p["evaluated"], "accurate": p["accurate"],
                         "candidate": p["candidate"], "failed": p["failed"], "picked": len(p["picked"]),
                         "labelled_total": labelled, "labelled_fraction": labelled / self.pool_size,
                         "converged": p["converged"]})
            k += 1
        converged = bool(rows) and rows[-1]["converged"]
        committee = self.members(k - 1) if k > 1 and (self.path(k - 1, 0) / "members.json").exists() else []
        return {"pool_frames": self.pool_size, "iterations": rows, "converged": converged,
                "iterations_to_converge": (len(rows) - 1) if converged else None, "labelled_frames": labelled,
                "labelled_fraction": labelled / self.pool_size, "committee": committee}


def format_summary(summary: dict) -> str:
    """Plain-text table of :meth:`Simplify.summary`."""
    lines = ["iter  evaluated  accurate  candidate  failed  picked  labelled (of pool)"]
    for r in summary["iterations"]:
        lines.append(f"{r['iteration']:4d}  {r['evaluated']:9d}  {r['accurate']:8d}  {r['candidate']:9d}  "
                     f"{r['failed']:6d}  {r['picked']:6d}  {r['labelled_total']} ({100 * r['labelled_fraction']:.1f} %)")
    state = (f"converged after {summary['iterations_to_converge']} iterations (iteration "
             f"{summary['iterations'][-1]['iteration']} picked nothing)" if summary["converged"] else "not converged")
    lines.append(f"{state}; {summary['labelled_frames']} of {summary['pool_frames']} pool frames labelled "
                 f"({100 * summary['labelled_fraction']:.1f} %)")
    return "\n".join(lines)


def simplify(config, workdir: str | Path = ".", log=None) -> dict:
    """Run or resume the loop of ``config`` (simplify.json path or dict) in ``workdir``; returns the summary."""
    return Simplify(config, workdir, log=log).run()
