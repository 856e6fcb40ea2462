"""The error catalogue, docs/errors.md: every kind of mistake a program can contain, with the
report the compiler prints for it and how to fix it.

The examples are the golden error cases of tests/compiler/test_golden_errors.py (one mistake
made in a small valid program), run through the compiler now, so the text in the catalogue
is what singac prints today.  What this module adds is the grouping and the fix for each;
a golden case without a fix here fails the docs test, so a new error gets documented.

    python -m singa_dsl.errcatalog > docs/errors.md      # from a source checkout
"""
from __future__ import annotations

import contextlib
import difflib
import importlib
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
GOLDEN_DIR = ROOT / "tests" / "compiler"
PLACE = "/home/you/project"   # stands for the temporary folder the examples are checked in

# golden case id -> (section, how to fix it).  None: the case tests a property of the
# report (no follow-on errors, the first block of a file) and shows no new kind of error.
S_SYNTAX, S_NAMES, S_VALUES, S_NET, S_DATA, S_PARAMS, S_UPDATER, S_ALGO, S_BLOCKS, \
    S_CLUSTER = ("Syntax", "Names", "Attributes and values", "Net structure and shapes",
                 "Data", "Params", "Updater and learning rate", "Algorithm",
                 "Blocks of the program", "Cluster and partitioning")
FIXES: dict[str, tuple[str, str] | None] = {
    "syntax_missing_colon_in_first_block": None,
    "syntax_missing_colon": (S_SYNTAX, "Write `key: value`; every setting in a block has a "
                             "colon between its key and its value."),
    "syntax_missing_equals": (S_SYNTAX, "A layer statement is `NAME = op(...)`."),
    "syntax_unclosed_paren": (S_SYNTAX, "Close the call on the line the error points above: "
                              "the parser only notices at the next token, so look one line up."),
    "syntax_unclosed_paren_at_end_of_file": (S_SYNTAX, "Add the missing `)`; the file ended "
                                             "inside a call."),
    "syntax_missing_value": (S_SYNTAX, "Give the key a value, or delete the line."),
    "syntax_missing_value_before_comma_in_first_block": None,
    "syntax_unknown_top_level_word": (S_SYNTAX, "Start every top-level block with one of "
                                      "the words the hint lists."),
    "syntax_keyword_with_extra_letters": None,
    "syntax_unexpected_character": (S_SYNTAX, "Remove the character; items are separated by "
                                    "newlines or commas, never by `;`."),
    "syntax_unterminated_string": (S_SYNTAX, "Close the string with `\"` on the same line."),
    "syntax_unexpected_end_of_file": (S_SYNTAX, "Close the block with `}`."),
    "syntax_nesting_too_deep": (S_SYNTAX, "Name the inner parts with `const` and use the "
                                "names."),
    "unknown_op": (S_NAMES, "Use one of the ops the hint lists (`docs/reference.md` "
                   "describes each); the hint's first suggestion is the closest name."),
    "unknown_op_has_no_follow_on_errors": None,
    "undefined_layer": (S_NAMES, "Sources must be layers defined in this net (earlier or "
                        "later in it) or data fields such as `mnist.image`."),
    "undefined_layer_suggests_the_earlier_layer": (S_NAMES, "Take the suggestion: here `fcl` "
                                                   "(letter l) should be `fc1` (digit one)."),
    "duplicate_layer": (S_NAMES, "Give each layer its own name."),
    "layer_named_like_a_data_block": (S_NAMES, "Rename the layer; `mnist.image` must mean "
                                      "one thing."),
    "duplicate_const": (S_NAMES, "Define each `const` once."),
    "undefined_const": (S_NAMES, "Define the name with `const NAME = value` or fix its "
                        "spelling."),
    "unknown_annotation": (S_NAMES, "Use `@batch`, `@feature` or `@none`."),
    "unknown_attribute": (S_VALUES, "Use an attribute the op has (the hint lists them)."),
    "wrong_attribute_type": (S_VALUES, "Give a value of the type the message names; sizes "
                             "are integers."),
    "attribute_out_of_range": (S_VALUES, "Give a value in the range the message states."),
    "missing_required_attribute": (S_VALUES, "Give the attribute, by position or by name "
                                   "(`dense(h1, 10)` or `dense(h1, units: 10)`)."),
    "attribute_given_by_position_and_by_name": (S_VALUES, "Give it once: drop the name or "
                                                "the position."),
    "attribute_given_twice_by_name": (S_VALUES, "Give each keyword argument once."),
    "too_many_positional_arguments": (S_VALUES, "Give everything after the op's defining "
                                      "sizes by name (`kernel: 5`, not `5`)."),
    "choice_attribute_with_a_wrong_word": (S_VALUES, "Use one of the words the message "
                                           "lists."),
    "division_by_zero": (S_VALUES, "Change the expression; constant expressions are "
                         "evaluated while checking."),
    "number_too_large": (S_VALUES, "Use a finite number."),
    "arithmetic_on_a_string": (S_VALUES, "Arithmetic works on numbers only."),
    "missing_source": (S_NET, "Give the op its sources first: `softmax_loss(logits, "
                       "label)`."),
    "source_is_not_a_layer": (S_NET, "A source is a layer name or a data field, not a "
                              "number."),
    "layer_is_not_a_call": (S_NET, "Every layer is an op call; to reuse a layer, use its "
                            "name as a source of the next one."),
    "cycle": (S_NET, "Point the layer at an earlier one. For recurrence use a recurrent op "
              "(`gru`, `lstm`, `rnn`) and `unroll:` in the net."),
    "two_partition_annotations": (S_NET, "Keep one of `@batch`, `@feature`, `@none`."),
    "integer_labels_fed_to_dense": (S_NET, "Feed labels only to a loss; turn ids into "
                                    "features with `onehot` or `embedding`."),
    "conv_on_flat_input": (S_NET, "Give the input its image shape: `input(d.image, shape: "
                           "[1, 8, 8])`."),
    "kernel_larger_than_input": (S_NET, "Use a smaller kernel, or pad the input (`pad:`)."),
    "topk_larger_than_classes": (S_NET, "`topk` counts a hit when the label is among the k "
                                 "best classes: keep it at most the number of classes."),
    "data_field_not_provided_by_source": (S_DATA, "Use a field the source provides (the "
                                          "hint lists them)."),
    "unknown_data_block": (S_DATA, "Use the name of a `data` block of the program."),
    "unknown_data_source": (S_DATA, "Use one of the sources the hint lists."),
    "unknown_data_phase": (S_DATA, "Phases are `train`, `test` and `validate`."),
    "missing_data_file": (S_DATA, "Paths are relative to the folder of the `.singa` file: "
                          "fix the path or put the file there (gzipped files are read as "
                          "they are)."),
    "data_constant_that_does_not_exist": (S_DATA, "Use a constant the source provides "
                                          "(`vocab` for `text`)."),
    "unknown_initializer": (S_PARAMS, "Use one of the initializers the hint lists."),
    "param_name_without_init_or_init_from": (S_PARAMS, "Add `init:` to `param(...)`, or "
                                             "load the param from an earlier job with the "
                                             "job's `init_from:`."),
    "param_name_used_twice": (S_PARAMS, "Give each param its own `name:`; to tie two params "
                              "use `share(...)`."),
    "share_of_unknown_param": (S_PARAMS, "Share a param that exists (`LAYER.PARAM`)."),
    "share_of_itself": (S_PARAMS, "Share another layer's param."),
    "share_shape_mismatch": (S_PARAMS, "Share only between params of the same shape."),
    "share_needs_transpose": (S_PARAMS, "Add `transpose: true` (an auto-encoder's decoder "
                              "uses the encoder's weights transposed)."),
    "unknown_updater": (S_UPDATER, "Use one of the updaters the hint lists."),
    "attribute_of_another_updater_kind": (S_UPDATER, "Use an attribute of this updater "
                                          "kind, or the kind that has it (`rho` belongs to "
                                          "`rmsprop` and `adadelta`)."),
    "unknown_schedule": (S_UPDATER, "Use one of the schedules the hint lists."),
    "fixed_step_lengths_differ": (S_UPDATER, "Give one `lr` for each step in `at`."),
    "negative_learning_rate": (S_UPDATER, "Learning rates are positive."),
    "unknown_algorithm": (S_ALGO, "Use `bp`, `cd` or `bptt`."),
    "cd_without_rbm": (S_ALGO, "Contrastive divergence trains `rbm` layers: add one, or "
                       "train with `bp`."),
    "bp_without_a_loss": (S_ALGO, "End the net with a loss layer (`softmax_loss`, "
                          "`euclidean_loss`)."),
    "unroll_without_bptt": (S_ALGO, "Train a recurrent net with `algorithm bptt`, or remove "
                            "`unroll`."),
    "unroll_without_bptt_on_flat_data": None,
    "bptt_without_unroll": (S_ALGO, "Set `unroll:` in the net to the sequence length."),
    "missing_job_block": (S_BLOCKS, "Add `job NAME { steps: N }`."),
    "missing_net_block": (S_BLOCKS, "Add the `net` block."),
    "missing_updater_block": (S_BLOCKS, "Add an `updater` block, e.g. `updater sgd { lr: "
                              "0.01 }`."),
    "two_job_blocks": (S_BLOCKS, "One file is one job: move the second job to a file of "
                       "its own and run the files in order (`singac run a.singa b.singa`)."),
    "entry_set_twice": (S_BLOCKS, "Set each key once."),
    "worker_groups_not_divisible_by_server_groups": (S_CLUSTER, "Make `worker_groups` a "
                                                     "multiple of `server_groups`: each "
                                                     "server group serves the same number "
                                                     "of worker groups."),
    "framework_contradiction": (S_CLUSTER, "Drop the number or the `framework:` shorthand "
                                "(see docs/cluster.md for what each framework fills in)."),
    "batch_not_divisible_by_workers": (S_CLUSTER, "Use a batch that the workers of a group "
                                       "can share evenly."),
    "features_not_divisible_by_workers": (S_CLUSTER, "Partition the layer on the batch, or "
                                          "make its size a multiple of the workers."),
    "unknown_framework_word": (S_CLUSTER, "Use `sandblaster`, `allreduce`, `downpour` or "
                               "`hogwild`."),
}
SECTIONS = (S_SYNTAX, S_NAMES, S_VALUES, S_NET, S_DATA, S_PARAMS, S_UPDATER, S_ALGO,
            S_BLOCKS, S_CLUSTER)


class CatalogueError(Exception):
    """The catalogue and the golden cases disagree (a case without a fix, a fix for no case)."""


def golden_module():
    if not GOLDEN_DIR.is_dir():
        raise CatalogueError(f"the golden error cases are in a source checkout: {GOLDEN_DIR}")
    if str(GOLDEN_DIR) not in sys.path:
        sys.path.insert(0, str(GOLDEN_DIR))
    return importlib.import_module("test_golden_errors")


def _change(golden, text: str) -> list[str]:
    """The smallest diff from one of the valid base programs: the example's `- +` lines."""
    best = None
    for base in (golden.BASE, golden.RNN_BASE, golden.NO_CONST_BASE):
        d = [l for l in difflib.unified_diff(base.splitlines(), text.splitlines(),
                                             lineterm="", n=0)
             if l[:1] in "+-" and not l.startswith(("+++", "---"))]
        if best is None or len(d) < len(best):
            best = d
    return [l if len(l) <= 96 else l[:92] + " ..." for l in best]


def entries() -> list[dict]:
    """Each documented case: id, section, title, change, report, fix; in golden order."""
    golden = golden_module()
    ids = [c.id for c in golden.CASES]
    missing = [i for i in ids if i not in FIXES]
    stale = [i for i in FIXES if i not in ids]
    if missing or stale:
        raise CatalogueError(
            (f"golden cases without a fix in singa_dsl/errcatalog.py FIXES: {missing}. "
             if missing else "") +
            (f"FIXES names cases that no longer exist: {stale}" if stale else ""))
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        golden.write_corpus(pathlib.Path(tmp))
        for case in golden.CASES:
            if FIXES[case.id] is None or case.xfail:
                continue
            section, fix = FIXES[case.id]
            report = golden.rendered_error(case.text, tmp).replace(tmp, PLACE)
            out.append({"id": case.id, "section": section, "fix": fix,
                        "title": report.splitlines()[0].split(": error: ", 1)[-1],
                        "change": _change(golden, case.text), "report": report})
    return out


# What each exit status of an error class means; a class with a status not here fails the
# docs test, so a new status gets documented.
EXIT_MEANINGS = {
    2: "a mistake in the program (the located reports above), or in the command's settings",
    3: "a data file or checkpoint that is missing, malformed or damaged",
    4: "an OpenCL kernel failed to build (the message names the op and a saved .cl file)",
    5: "a worker or server process failed (the message names its rank and role)",
    6: "the training loss became NaN or infinite (lower the learning rate, or add `clip:`)",
    7: "a message between ranks that is not ours or was damaged on the way",
    8: "a rank of a distributed job died; the job was stopped (the message names its role)",
    70: "an internal error: a bug in singa_dsl, please report it",
}
EXIT_CODE_MODULES = ("singa_dsl.errors", "singa_dsl.runtime.checkpoint",
                     "singa_dsl.runtime.trainer", "singa_dsl.runtime.messages",
                     "singa_dsl.runtime.launch")


def exit_codes() -> list[tuple[int, list[str], str]]:
    """(status, error classes, what it means) for the error classes a user can meet."""
    from .errors import SingaError, SingaWarning
    codes: dict[int, set[str]] = {}
    for module in map(importlib.import_module, EXIT_CODE_MODULES):
        for name, cls in vars(module).items():
            if isinstance(cls, type) and issubclass(cls, SingaError) and \
                    cls is not SingaWarning and cls.__module__ == module.__name__:
                codes.setdefault(cls.exit_code, set()).add(name)
    unknown = sorted(set(codes) - set(EXIT_MEANINGS))
    if unknown:
        raise CatalogueError(f"exit status {unknown} has no meaning in EXIT_MEANINGS")
    return [(code, sorted(codes[code]), EXIT_MEANINGS[code]) for code in sorted(codes)]


def catalogue() -> str:
    items = entries()
    out = ["# Error catalogue", "",
           "Generated by `python -m singa_dsl.errcatalog` from the golden error cases of "
           "`tests/compiler/test_golden_errors.py`, each run through the compiler; do not "
           "edit by hand.", "",
           "Every mistake a program can contain is reported before anything runs, all of them "
           "at once, in source order, as",
           "", "```text", "FILE:LINE:COL: error: MESSAGE", "  the source line",
           "  ^^^^ under the part that is wrong", "  hint: what to do, where there is a hint",
           "N errors found", "```", "",
           "and `singac` exits with status 2. Each example below makes one mistake in a small "
           "valid program (the `-`/`+` lines show the change), then shows the report exactly "
           "as `singac check` prints it.", ""]
    for section in SECTIONS:
        group = [e for e in items if e["section"] == section]
        out.append(f"- [{section}](#{_anchor(section)}): " + ", ".join(
            f"[{_heading(e)}](#{_anchor(_heading(e))})" for e in group))
    out.extend(["- [Exit codes](#exit-codes): errors outside the program", ""])
    for section in SECTIONS:
        out.extend([f"## {section}", ""])
        for e in (e for e in items if e["section"] == section):
            out.extend([f"### {_heading(e)}", ""])
            if 0 < len(e["change"]) <= 6:
                out.extend(["```diff", *e["change"], "```"])
            out.extend(["```text", e["report"], "```", "", f"**Fix:** {e['fix']}", ""])
    out.extend(_exit_code_section())
    return "\n".join(out).rstrip() + "\n"


def _exit_code_section() -> list[str]:
    out = ["## Exit codes", "",
           "Errors outside the program (data, checkpoints, devices, the run itself) print as "
           "`error: MESSAGE` with a hint, never a traceback, and set the exit status:", "",
           "| status | error | meaning |", "|---|---|---|", "| 0 | | success |",
           "| 1 | | `singac fmt --check`: a file is not canonically formatted |"]
    out += [f"| {code} | {', '.join(f'`{n}`' for n in names)} | {meaning} |"
            for code, names, meaning in exit_codes()]
    out += ["| 64 | | bad command-line usage (e.g. `singac` with no command) |",
            "| 130 | | interrupted (Ctrl-C) |", ""]
    return out


def _heading(entry: dict) -> str:
    return entry["id"].replace("_", " ")


def _anchor(title: str) -> str:
    return "".join(ch for ch in title.lower().replace(" ", "-") if ch.isalnum() or ch == "-")


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.write(catalogue())
