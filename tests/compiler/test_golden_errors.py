"""Golden error reports: each test makes ONE mistake a user makes in a valid base program
and asserts the whole rendered report — file:line:col, message, the source line, the caret
line, the hint and the trailer.

Lists that grow with the registries (known ops, updaters, ...) are spliced in from the
registries so that adding an op does not break forty tests; everything else is literal.
Tests marked xfail(strict=True) hold what a user SHOULD see where the compiler currently
says something worse (see each reason); they start passing — and must then be unmarked —
once the compiler is fixed."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from singa_dsl import SingaError
from singa_dsl.compiler.algorithms import ALGORITHMS
from singa_dsl.compiler.ops import OPS
from singa_dsl.runtime.data import SOURCES
from singa_dsl.runtime.initializers import INITIALIZERS
from singa_dsl.runtime.schedules import SCHEDULES
from singa_dsl.runtime.updaters import UPDATERS

from singa_testlib import BASE, RNN_BASE, check_text, rendered_error, substitute, write_corpus


def _known(registry) -> str:
    return ", ".join(sorted(registry.names()))


def _attrs(attrs) -> str:
    return ", ".join(a.name for a in attrs)


# Placeholders in expected texts, filled in at test time.
def _placeholders(tmp_path) -> dict[str, str]:
    from singa_dsl.compiler.check_blocks import JOB_ATTRS
    return {
        "<TMP>": str(tmp_path),
        "<OPS>": _known(OPS),
        "<UPDATERS>": _known(UPDATERS),
        "<SCHEDULES>": _known(SCHEDULES),
        "<INITIALIZERS>": _known(INITIALIZERS),
        "<SOURCES>": _known(SOURCES),
        "<ALGORITHMS>": _known(ALGORITHMS),
        "<SOFTMAX_LOSS_ATTRS>": _attrs(OPS["softmax_loss"].attrs),
        "<SGD_ATTRS>": _attrs(UPDATERS["sgd"].attrs),
        "<JOB_ATTRS>": _attrs(JOB_ATTRS),
    }


@dataclass(frozen=True)
class Golden:
    id: str
    text: str
    expected: str
    xfail: str | None = None

    def param(self):
        marks = [pytest.mark.xfail(strict=True, reason=self.xfail)] if self.xfail else []
        return pytest.param(self, id=self.id, marks=marks)


def S(*pairs):
    return substitute(BASE, *pairs)


def R(*pairs):
    return substitute(RNN_BASE, *pairs)


NO_CONST_BASE = S("const H = 64\n\n", "", "dense(x, H,", "dense(x, 64,")
DEEP = "(" * 200 + "64" + ")" * 200

CASES = [
    # ---- syntax -----------------------------------------------------------------------
    Golden("syntax_missing_colon_in_first_block",
           substitute(NO_CONST_BASE, "steps: 100", "steps 100"), """\
demo.singa:2:9: error: unexpected '100', expected ':'
    steps 100
          ^^^
  hint: missing ':' between a key and its value
1 error found"""),
    Golden("syntax_missing_colon",
           S("steps: 100", "steps 100"), """\
demo.singa:4:9: error: unexpected '100', expected ':'
    steps 100
          ^^^
  hint: missing ':' between a key and its value
1 error found"""),
    Golden("syntax_missing_equals",
           S("h1   = relu", "h1   relu"), """\
demo.singa:17:8: error: unexpected 'relu', expected ':' or '='
    h1   relu(fc1)
         ^^^^
  hint: missing '=' in a layer statement (write NAME = op(...))
1 error found"""),
    Golden("syntax_unclosed_paren",
           S("h1   = relu(fc1)", "h1   = relu(fc1"), """\
demo.singa:18:3: error: unexpected 'fc2', expected one of '(', ')', '*', '+', ',', '-', '.', '/', ...
    fc2  = dense(h1, 10)
    ^^^
  hint: unclosed '(' : a call or group is missing its ')'
1 error found"""),
    Golden("syntax_unclosed_paren_at_end_of_file",
           NO_CONST_BASE[:NO_CONST_BASE.index("100")] + "max(100", """\
demo.singa:2:17: error: unexpected end of file, expected ')' or ','
    steps: max(100
                  ^
  hint: unclosed '(' : a call or group is missing its ')'
1 error found"""),
    Golden("syntax_missing_value",
           S("momentum: 0.9", "momentum:"), """\
demo.singa:27:1: error: unexpected '}', expected one of '(', '+', '-', '[', a name, a number, a string, an integer, ...
  }
  ^
  hint: a value is missing here
1 error found"""),
    Golden("syntax_missing_value_before_comma_in_first_block",
           substitute(NO_CONST_BASE, "steps: 100", "steps: ,"), """\
demo.singa:2:10: error: unexpected ',', expected one of '(', '+', '-', '[', a name, a number, a string, an integer, ...
    steps: ,
           ^
  hint: a value is missing here
1 error found"""),
    Golden("syntax_unknown_top_level_word",
           S("algorithm bp", "algo bp"), """\
demo.singa:22:1: error: unexpected 'algo', expected one of 'algorithm', 'cluster', 'const', 'data', 'job', 'net', 'updater', end of file
  algo bp
  ^^^^
  hint: a block must start with one of: const, job, data, net, algorithm, updater, cluster
1 error found"""),
    Golden("syntax_keyword_with_extra_letters",
           S("net mlp {", "nett mlp {"), """\
demo.singa:14:1: error: unexpected 'nett', expected one of 'algorithm', 'cluster', 'const', 'data', 'job', 'net', 'updater', end of file
  nett mlp {
  ^^^^
  hint: a block must start with one of: const, job, data, net, algorithm, updater, cluster
1 error found"""),
    Golden("syntax_unexpected_character",
           S("momentum: 0.9", "momentum: 0.9;"), """\
demo.singa:26:16: error: unexpected character ';'
    momentum: 0.9;
                 ^
1 error found"""),
    Golden("syntax_unterminated_string",
           S('"runs/demo"', '"runs/demo'), """\
demo.singa:6:14: error: unterminated string: a string must end with " on the same line
    workspace: "runs/demo
               ^
1 error found"""),
    Golden("syntax_unexpected_end_of_file",
           BASE[:-2], """\
demo.singa:30:23: error: unexpected end of file, expected one of ',', '}', a name
    workers_per_group: 1
                        ^
1 error found"""),
    Golden("syntax_nesting_too_deep",
           S("const H = 64", "const H = " + DEEP), f"""\
demo.singa:1:11: error: expression nested more than 200 levels deep
  const H = {DEEP}
            {'^' * len(DEEP)}
  hint: name the inner parts with 'const' or simplify the expression
1 error found"""),

    # ---- names: ops, attributes, layers, consts -----------------------------------------
    Golden("unknown_op",
           S("softmax_loss(fc2", "softmax_los(fc2"), """\
demo.singa:19:10: error: unknown op 'softmax_los'
    loss = softmax_los(fc2, mnist.label, topk: 1)
           ^^^^^^^^^^^
  hint: did you mean 'softmax_loss'? known ops: <OPS>
1 error found"""),
    Golden("unknown_op_has_no_follow_on_errors",
           S("relu(fc1)", "rleu(fc1)"), """\
demo.singa:17:10: error: unknown op 'rleu'
    h1   = rleu(fc1)
           ^^^^
  hint: did you mean 'relu'? known ops: <OPS>
1 error found"""),
    Golden("unknown_attribute",
           S("topk: 1", "top_k: 1"), """\
demo.singa:19:41: error: unknown attribute 'top_k' for softmax_loss layer 'loss'
    loss = softmax_loss(fc2, mnist.label, top_k: 1)
                                          ^^^^^^^^
  hint: did you mean 'topk'? attributes of softmax_loss layer 'loss': <SOFTMAX_LOSS_ATTRS>
1 error found"""),
    Golden("wrong_attribute_type",
           S("dense(h1, 10)", "dense(h1, 10.5)"), """\
demo.singa:18:20: error: 'units' of dense layer 'fc2' must be an integer, got the number 10.5
    fc2  = dense(h1, 10.5)
                     ^^^^
1 error found"""),
    Golden("attribute_out_of_range",
           S("dense(h1, 10)", "dense(h1, 0)"), """\
demo.singa:18:20: error: units must be > 0, got 0 (in dense layer 'fc2')
    fc2  = dense(h1, 0)
                     ^
1 error found"""),
    Golden("missing_required_attribute",
           S("dense(h1, 10)", "dense(h1)"), """\
demo.singa:18:10: error: dense layer 'fc2' needs 'units'
    fc2  = dense(h1)
           ^^^^^^^^^
  hint: units: an integer — output features
1 error found"""),
    Golden("missing_source",
           S("softmax_loss(fc2, mnist.label, topk: 1)", "softmax_loss(topk: 1)"), """\
demo.singa:19:10: error: softmax_loss needs its source 'logits'
    loss = softmax_loss(topk: 1)
           ^^^^^^^^^^^^^^^^^^^^^
  hint: write softmax_loss(logits, label, ...)
1 error found"""),
    Golden("source_is_not_a_layer",
           S("relu(fc1)", "relu(3)"), """\
demo.singa:17:15: error: source 1 of relu must be a layer or a data field
    h1   = relu(3)
                ^
  hint: relu takes its sources first: relu(x, ...)
1 error found"""),
    Golden("layer_is_not_a_call",
           S("loss = softmax_loss(fc2, mnist.label, topk: 1)", "loss = fc2"), """\
demo.singa:19:10: error: a layer must be an op call such as dense(x, 10)
    loss = fc2
           ^^^
1 error found"""),
    Golden("undefined_layer",
           S("dense(h1, 10)", "dense(h2, 10)"), """\
demo.singa:18:16: error: undefined layer 'h2'
    fc2  = dense(h2, 10)
                 ^^
  hint: sources are layers of this net or data fields such as mnist.image
1 error found"""),
    Golden("undefined_layer_suggests_the_earlier_layer",
           S("relu(fc1)", "relu(fcl)"), """\
demo.singa:17:15: error: undefined layer 'fcl'
    h1   = relu(fcl)
                ^^^
  hint: did you mean 'fc1'?
1 error found"""),
    Golden("duplicate_layer",
           S("  h1   = relu(fc1)\n", "  h1   = relu(fc1)\n  h1   = relu(fc1)\n"), """\
demo.singa:18:3: error: layer 'h1' is defined twice
    h1   = relu(fc1)
    ^^
  hint: the first definition is at line 17
1 error found"""),
    Golden("layer_named_like_a_data_block",
           S("x    = input(mnist.image)", "mnist = input(mnist.image)", "dense(x, H", "dense(mnist, H"),
           """\
demo.singa:15:3: error: layer 'mnist' has the name of a data block
    mnist = input(mnist.image)
    ^^^^^
  hint: rename the layer
1 error found"""),
    Golden("cycle",
           S("dense(x, H", "dense(h1, H"), """\
demo.singa:16:3: error: the net has a cycle: fc1 -> h1 -> fc1
    fc1  = dense(h1, H, w: uniform(-0.1, 0.1))
    ^^^
  hint: a layer cannot depend on itself; express recurrence with 'unroll' and a recurrent op (gru, lstm, rnn)
1 error found"""),
    Golden("duplicate_const",
           S("const H = 64\n", "const H = 64\nconst H = 32\n"), """\
demo.singa:2:7: error: const 'H' is defined twice
  const H = 32
        ^
  hint: the first definition is at line 1
1 error found"""),
    Golden("undefined_const",
           S("dense(x, H", "dense(x, HH"), """\
demo.singa:16:19: error: undefined name 'HH'
    fc1  = dense(x, HH, w: uniform(-0.1, 0.1))
                    ^^
  hint: did you mean 'H'?
1 error found"""),
    Golden("division_by_zero",
           S("dense(x, H", "dense(x, H / (H - 64)"), """\
demo.singa:16:19: error: division by zero
    fc1  = dense(x, H / (H - 64), w: uniform(-0.1, 0.1))
                    ^^^^^^^^^^^^
1 error found"""),
    Golden("number_too_large",
           S("momentum: 0.9", "momentum: 1e999"), """\
demo.singa:26:13: error: number is too large
    momentum: 1e999
              ^^^^^
  hint: numbers must be finite and at most 1e+300 in size
1 error found"""),
    Golden("arithmetic_on_a_string",
           S("dense(h1, 10)", 'dense(h1, 10 + "a")'), """\
demo.singa:18:20: error: '+' needs numbers, got the string 'a'
    fc2  = dense(h1, 10 + "a")
                     ^^^^^^^^
1 error found"""),
    Golden("attribute_given_by_position_and_by_name",
           S("dense(h1, 10)", "dense(h1, 10, units: 10)"), """\
demo.singa:18:24: error: attribute 'units' of dense layer 'fc2' given twice (by position and by name)
    fc2  = dense(h1, 10, units: 10)
                         ^^^^^^^^^
1 error found"""),
    Golden("attribute_given_twice_by_name",
           S("topk: 1", "topk: 1, topk: 2"), """\
demo.singa:19:50: error: argument 'topk' given twice
    loss = softmax_loss(fc2, mnist.label, topk: 1, topk: 2)
                                                   ^^^^^^^
1 error found"""),
    Golden("too_many_positional_arguments",
           S("dense(h1, 10)", "dense(h1, 10, 20)"), """\
demo.singa:18:24: error: dense layer 'fc2' takes 1 positional argument, got 2
    fc2  = dense(h1, 10, 20)
                         ^^
  hint: positional arguments of dense layer 'fc2': units; give the rest by name
1 error found"""),
    Golden("unknown_annotation",
           S("h1   = relu(fc1)", "h1   = relu(fc1) @feat"), """\
demo.singa:17:20: error: unknown annotation '@feat'
    h1   = relu(fc1) @feat
                     ^^^^^
  hint: annotations: @batch, @feature, @none
1 error found"""),
    Golden("two_partition_annotations",
           S("fc2  = dense(h1, 10)", "fc2  = dense(h1, 10) @feature @batch"), """\
demo.singa:18:33: error: layer 'fc2' has two partition annotations
    fc2  = dense(h1, 10) @feature @batch
                                  ^^^^^^
1 error found"""),

    # ---- data -----------------------------------------------------------------------------
    Golden("data_field_not_provided_by_source",
           S("input(mnist.image)", "input(mnist.pixels)"), """\
demo.singa:15:16: error: data mnist has no field 'pixels'
    x    = input(mnist.pixels)
                 ^^^^^^^^^^^^
  hint: digits() provides: image, label
1 error found"""),
    Golden("unknown_data_block",
           S("input(mnist.image)", "input(mnsit.image)"), """\
demo.singa:15:16: error: 'mnsit.image' is not a data field: there is no data block 'mnsit'
    x    = input(mnsit.image)
                 ^^^^^^^^^^^
  hint: data blocks: mnist
1 error found"""),
    Golden("unknown_data_source",
           S('train: digits(', 'train: digitz('), """\
demo.singa:10:10: error: unknown data source 'digitz'
    train: digitz(split: "train", batch: 32)
           ^^^^^^
  hint: did you mean 'digits'? known data sources: <SOURCES>
1 error found"""),
    Golden("unknown_data_phase",
           S("test:  digits", "tset:  digits"), """\
demo.singa:11:3: error: unknown phase 'tset' in data mnist
    tset:  digits(split: "test", batch: 32)
    ^^^^
  hint: phases: train, test, validate
1 error found"""),
    Golden("choice_attribute_with_a_wrong_word",
           S('split: "train"', 'split: "dev"'), """\
demo.singa:10:17: error: 'split' of digits() must be one of train | test, got the string 'dev'
    train: digits(split: "dev", batch: 32)
                  ^^^^^^^^^^^^
1 error found"""),
    Golden("missing_data_file",
           S('digits(split: "train", batch: 32)',
             'idx(images: "train-images.gz", labels: "train-labels.gz", batch: 32)'), """\
demo.singa:10:14: error: data file 'train-images.gz': not found (looked for <TMP>/train-images.gz; paths are relative to the program's folder)
    train: idx(images: "train-images.gz", labels: "train-labels.gz", batch: 32)
               ^^^^^^^^^^^^^^^^^^^^^^^^^
1 error found"""),
    Golden("data_constant_that_does_not_exist",
           R("onehot(x, corpus.vocab)", "onehot(x, corpus.vocb)"), """\
demo.singa:14:20: error: data corpus has no constant 'vocb'
    e    = onehot(x, corpus.vocb)
                     ^^^^^^^^^^^
  hint: constants: vocab
1 error found"""),

    # ---- shapes ---------------------------------------------------------------------------
    Golden("integer_labels_fed_to_dense",
           S("dense(h1, 10)", "dense(mnist.label, 10)"), """\
demo.singa:18:16: error: source 1 of dense gives integer ids or labels, but dense expects real-valued features
    fc2  = dense(mnist.label, 10)
                 ^^^^^^^^^^^
  hint: turn ids into features with onehot(x, vocab) or embedding(x, vocab, dim)
1 error found"""),
    Golden("conv_on_flat_input",
           S("relu(fc1)", "relu(conv(x, 8, kernel: 3))"), """\
demo.singa:17:20: error: conv layer 'h1.conv': conv needs (channels, height, width) input, got shape [64]
    h1   = relu(conv(x, 8, kernel: 3))
                     ^
  hint: give the input its image shape, e.g. input(d.image, shape: [1, 8, 8])
1 error found"""),
    Golden("kernel_larger_than_input",
           S("input(mnist.image)", "input(mnist.image, shape: [1, 8, 8])",
             "relu(fc1)", "relu(conv(x, 8, kernel: 9))"), """\
demo.singa:17:26: error: conv layer 'h1.conv': kernel 9 is larger than the padded input 8x8
    h1   = relu(conv(x, 8, kernel: 9))
                           ^^^^^^^^^
  hint: use a smaller kernel or more padding
1 error found"""),
    Golden("topk_larger_than_classes",
           S("topk: 1", "topk: 11"), """\
demo.singa:19:41: error: softmax_loss layer 'loss': topk 11 is larger than the 10 classes
    loss = softmax_loss(fc2, mnist.label, topk: 11)
                                          ^^^^^^^^
  hint: input shapes: [10], []
1 error found"""),

    # ---- params -----------------------------------------------------------------------------
    Golden("unknown_initializer",
           S("uniform(-0.1, 0.1)", "unifrom(-0.1, 0.1)"), """\
demo.singa:16:25: error: unknown initializer 'unifrom'
    fc1  = dense(x, H, w: unifrom(-0.1, 0.1))
                          ^^^^^^^
  hint: did you mean 'uniform'? known initializers: <INITIALIZERS>
1 error found"""),
    Golden("param_name_without_init_or_init_from",
           S("w: uniform(-0.1, 0.1)", 'w: param(name: "w1")'), """\
demo.singa:16:22: error: param 'w1' (fc1.w) has no initializer and no init_from to load it
    fc1  = dense(x, H, w: param(name: "w1"))
                       ^^^^^^^^^^^^^^^^^^^^
  hint: add init: ... to param(...), or init_from: ["runs/..."] to the job
1 error found"""),
    Golden("param_name_used_twice",
           S("w: uniform(-0.1, 0.1)", 'w: param(init: glorot(), name: "w")',
             "dense(h1, 10)", 'dense(h1, 10, w: param(init: glorot(), name: "w"))'), """\
demo.singa:18:24: error: param name 'w' is used twice
    fc2  = dense(h1, 10, w: param(init: glorot(), name: "w"))
                         ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  hint: also used by fc1.w (line 16)
1 error found"""),
    Golden("share_of_unknown_param",
           S("dense(h1, 10)", "dense(h1, 10, w: share(fc9.w))"), """\
demo.singa:18:33: error: share() of unknown param 'fc9.w'
    fc2  = dense(h1, 10, w: share(fc9.w))
                                  ^^^^^
  hint: did you mean 'fc2.w'?
1 error found"""),
    Golden("share_of_itself",
           S("dense(h1, 10)", "dense(h1, 10, w: share(fc2.w))"), """\
demo.singa:18:33: error: fc2.w cannot share itself
    fc2  = dense(h1, 10, w: share(fc2.w))
                                  ^^^^^
1 error found"""),
    Golden("share_shape_mismatch",
           S("dense(h1, 10)", "dense(h1, 10, w: share(fc1.w))"), """\
demo.singa:18:33: error: cannot share fc1.w: its shape is [64, 64] but fc2.w needs [10, 64]
    fc2  = dense(h1, 10, w: share(fc1.w))
                                  ^^^^^
1 error found"""),
    Golden("share_needs_transpose",
           S("  loss", "  fc3  = dense(fc2, 64, w: share(fc2.w))\n  loss"), """\
demo.singa:19:34: error: cannot share fc2.w: its shape is [10, 64] but fc3.w needs [64, 10]
    fc3  = dense(fc2, 64, w: share(fc2.w))
                                   ^^^^^
  hint: try transpose: true
1 error found"""),

    # ---- updater, algorithm ---------------------------------------------------------------
    Golden("unknown_updater",
           S("updater sgd", "updater sdg"), """\
demo.singa:24:9: error: unknown updater 'sdg'
  updater sdg {
          ^^^
  hint: did you mean 'sgd'? known updaters: <UPDATERS>
1 error found"""),
    Golden("attribute_of_another_updater_kind",
           S("momentum: 0.9", "rho: 0.9"), """\
demo.singa:26:3: error: unknown attribute 'rho' for updater sgd
    rho: 0.9
    ^^^^^^^^
  hint: attributes of updater sgd: <SGD_ATTRS>
1 error found"""),
    Golden("unknown_schedule",
           S("lr: step(", "lr: stepp("), """\
demo.singa:25:7: error: unknown learning-rate schedule 'stepp'
    lr: stepp(0.01, every: 60, gamma: 0.9)
        ^^^^^
  hint: did you mean 'step'? known schedules: <SCHEDULES>
1 error found"""),
    Golden("fixed_step_lengths_differ",
           S("lr: step(0.01, every: 60, gamma: 0.9)",
             "lr: fixed_step(at: [0, 100], lr: [0.1, 0.01, 0.001])"), """\
demo.singa:25:7: error: fixed_step needs one lr per step: at has 2 entries, lr has 3
    lr: fixed_step(at: [0, 100], lr: [0.1, 0.01, 0.001])
        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
1 error found"""),
    Golden("negative_learning_rate",
           S("lr: step(0.01, every: 60, gamma: 0.9)", "lr: -0.1"), """\
demo.singa:25:3: error: lr must be > 0, got -0.1
    lr: -0.1
    ^^^^^^^^
1 error found"""),
    Golden("unknown_algorithm",
           S("algorithm bp", "algorithm bpp"), """\
demo.singa:22:11: error: unknown algorithm 'bpp'
  algorithm bpp
            ^^^
  hint: did you mean 'bp'? known algorithms: <ALGORITHMS>
1 error found"""),
    Golden("cd_without_rbm",
           S("algorithm bp", "algorithm cd { k: 1 }"), """\
demo.singa:22:1: error: algorithm cd trains rbm layers, but the net has none
  algorithm cd { k: 1 }
  ^^^^^^^^^^^^^^^^^^^^^
  hint: add an rbm layer, or use algorithm bp
1 error found"""),
    Golden("bp_without_a_loss",
           S("  loss = softmax_loss(fc2, mnist.label, topk: 1)\n", ""), """\
demo.singa:21:1: error: algorithm bp needs a loss layer (softmax_loss or euclidean_loss)
  algorithm bp
  ^^^^^^^^^^^^
1 error found"""),
    Golden("unroll_without_bptt",
           R("algorithm bptt", "algorithm bp"), """\
demo.singa:12:3: error: unroll: 10 needs algorithm bptt
    unroll: 10
    ^^^^^^^^^^
  hint: use algorithm bptt to train a recurrent net, or remove unroll
1 error found"""),
    Golden("unroll_without_bptt_on_flat_data",
           S("net mlp {\n", "net mlp {\n  unroll: 5\n"), """\
demo.singa:15:3: error: unroll: 5 needs algorithm bptt
    unroll: 5
    ^^^^^^^^^
  hint: use algorithm bptt to train a recurrent net, or remove unroll
1 error found"""),
    Golden("bptt_without_unroll",
           R("  unroll: 10\n", ""), """\
demo.singa:11:5: error: algorithm bptt needs the net to set unroll: N (N >= 2)
  net char_rnn {
      ^^^^^^^^
  hint: add unroll: 50 (the sequence length) to the net
1 error found"""),

    # ---- missing blocks -------------------------------------------------------------------
    Golden("missing_job_block",
           S('job demo {\n  steps: 100\n  test: every(50, batches: 2)\n  workspace: "runs/demo"\n'
             '}\n\n', ""), """\
demo.singa:1:1: error: the program has no job block
  const H = 64
  ^
  hint: add job NAME { steps: 1000 }
1 error found"""),
    Golden("missing_net_block",
           S(BASE[BASE.index("net mlp"):BASE.index("algorithm")], ""), """\
demo.singa:1:1: error: the program has no net block
  const H = 64
  ^
  hint: add net NAME { x = input(data.image) ... }
1 error found"""),
    Golden("missing_updater_block",
           S("updater sgd {\n  lr: step(0.01, every: 60, gamma: 0.9)\n  momentum: 0.9\n}\n\n", ""),
           """\
demo.singa:1:1: error: the program has no updater block
  const H = 64
  ^
  hint: add updater sgd { lr: 0.01 }
1 error found"""),
    Golden("two_job_blocks",
           BASE + "\njob other {\n  steps: 1\n}\n", """\
demo.singa:33:1: error: only one job block is allowed
  job other {
  ^^^^^^^^^^^
  hint: the first is at line 3
1 error found"""),
    Golden("entry_set_twice",
           S("steps: 100", "steps: 100\n  steps: 200"), """\
demo.singa:5:3: error: 'steps' is set twice in job
    steps: 200
    ^^^^^
1 error found"""),

    # ---- cluster --------------------------------------------------------------------------
    Golden("worker_groups_not_divisible_by_server_groups",
           S("workers_per_group: 1", "worker_groups: 3\n  server_groups: 2"), """\
demo.singa:31:3: error: 3 worker groups cannot be shared evenly by 2 server groups
    server_groups: 2
    ^^^^^^^^^^^^^^^^
  hint: worker_groups must be a multiple of server_groups
1 error found"""),
    Golden("framework_contradiction",
           S("workers_per_group: 1", "framework: sandblaster\n  worker_groups: 2"), """\
demo.singa:31:3: error: worker_groups: 2 contradicts framework sandblaster, which needs worker_groups: 1
    worker_groups: 2
    ^^^^^^^^^^^^^^^^
  hint: remove worker_groups or the framework shorthand
1 error found"""),
    Golden("batch_not_divisible_by_workers",
           S("workers_per_group: 1", "workers_per_group: 3"), """\
demo.singa:10:10: error: batch 32 is not divisible by 3 workers per group
    train: digits(split: "train", batch: 32)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  hint: use a batch that is a multiple of 3
1 error found"""),
    Golden("features_not_divisible_by_workers",
           S("fc2  = dense(h1, 10)", "fc2  = dense(h1, 10) @feature",
             "workers_per_group: 1", "workers_per_group: 4"), """\
demo.singa:18:24: error: layer 'fc2' has 10 features, not divisible by 4 workers per group
    fc2  = dense(h1, 10) @feature
                         ^^^^^^^^
  hint: partition it on the batch (@batch) or make it a multiple of 4
1 error found"""),
    Golden("unknown_framework_word",
           S("workers_per_group: 1", "framework: sandblast"), """\
demo.singa:30:3: error: 'framework' of cluster must be one of sandblaster | allreduce | downpour | hogwild, got the name 'sandblast'
    framework: sandblast
    ^^^^^^^^^^^^^^^^^^^^
1 error found"""),
]


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_golden_error(case: Golden, tmp_path):
    write_corpus(tmp_path)
    expected = case.expected
    for key, value in _placeholders(tmp_path).items():
        expected = expected.replace(key, value)
    got = rendered_error(case.text, tmp_path)
    assert got == expected


def test_cases_are_distinct_and_many():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    texts = [c.text for c in CASES]
    assert len(texts) == len(set(texts)), "two cases make the same change"
    assert len(CASES) >= 35


def test_the_bases_are_valid(tmp_path):
    write_corpus(tmp_path)
    check_text(BASE, base_dir=tmp_path)
    check_text(RNN_BASE, base_dir=tmp_path)
    check_text(NO_CONST_BASE, base_dir=tmp_path)


# ---- several errors at once -------------------------------------------------------------
MULTI = S("steps: 100", "steps: 0",              # job (checked early), line 4
          "dense(h1, 10)", "dense(h1, 0)",       # net (checked late), line 18
          "momentum: 0.9", "momentum: true",     # updater (checked before the net), line 26
          "workers_per_group: 1", "workers_per_group: 0")   # cluster, line 30


def test_every_error_is_reported_sorted_by_position(tmp_path):
    with pytest.raises(SingaError) as info:
        check_text(MULTI, base_dir=tmp_path)
    errors = info.value.errors
    assert [(e.span.line, e.span.column) for e in errors] == [(4, 3), (18, 20), (26, 3), (30, 3)]
    assert info.value.render() == """\
demo.singa:4:3: error: steps must be > 0, got 0 (in job demo)
    steps: 0
    ^^^^^^^^
demo.singa:18:20: error: units must be > 0, got 0 (in dense layer 'fc2')
    fc2  = dense(h1, 0)
                     ^
demo.singa:26:3: error: 'momentum' of updater sgd must be a number, got the boolean true
    momentum: true
    ^^^^^^^^^^^^^^
demo.singa:30:3: error: workers_per_group must be > 0, got 0 (in cluster)
    workers_per_group: 0
    ^^^^^^^^^^^^^^^^^^^^
4 errors found"""


def test_errors_on_one_line_are_sorted_by_column(tmp_path):
    # the annotation is checked before the call's arguments, yet reported after them
    text = S("fc1  = dense(x, H, w: uniform(-0.1, 0.1))",
             "fc1  = dense(x, HH, w: uniform(-0.1, 0.1)) @feat")
    with pytest.raises(SingaError) as info:
        check_text(text, base_dir=tmp_path)
    assert [(e.span.line, e.span.column) for e in info.value.errors] == [(16, 19), (16, 46)]
    report = info.value.render()
    assert report.endswith("\n2 errors found")
    assert report.index("undefined name 'HH'") < report.index("unknown annotation '@feat'")


def test_a_bad_size_does_not_hide_a_bad_initializer(tmp_path):
    text = S("fc1  = dense(x, H, w: uniform(-0.1, 0.1))",
             "fc1  = dense(x, HH, w: unifrom(-0.1, 0.1))")
    with pytest.raises(SingaError) as info:
        check_text(text, base_dir=tmp_path)
    assert [e.message for e in info.value.errors] == [
        "undefined name 'HH'", "unknown initializer 'unifrom'"]


def test_one_error_says_one_error(tmp_path):
    report = rendered_error(S("dense(h1, 10)", "dense(h1, 0)"), tmp_path)
    assert report.endswith("\n1 error found") and "errors found" not in report
