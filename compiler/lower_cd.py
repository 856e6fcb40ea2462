"""Lowering ``algorithm cd { k: N }``: SINGA's kCD (CDWorker with RBMVis/RBMHid) for the net's
one rbm layer.

Every layer's forward runs as under BP — the layers before the rbm are fixed feature
extractors (their params are loaded by ``init_from`` and get no updater launch), and the
rbm's own forward is the positive phase h⁺ = σ(v⁺·Wᵀ + hbias).  Then, in the train phase:

    for g in 0..k-1:  s  = sample(h)              h = h⁺ at g = 0, h⁻ afterwards
                      v⁻ = σ(s·W + vbias)         (not sampled, as in Hinton's recipe)
                      err = Σ(v⁺ − v⁻)² per sample    (g = 0 only: SINGA's "Squared Error")
                      h⁻ = σ(v⁻·Wᵀ + hbias)       (the pre-activation for Gaussian units)
    pgrad(w)     = (h⁻ᵀ·v⁻ − h⁺ᵀ·v⁺)/B = [h⁻; h⁺]ᵀ·[v⁻; −v⁺]/B   (one GEMM, k = 2B)
    pgrad(vbias) = Σ(v⁻ − v⁺)/B,   pgrad(hbias) = Σ(h⁻ − h⁺)/B

and the normal updater launches follow (for the rbm's params only).  sample() is Bernoulli
(1 where u < h) or h + N(0, 1), from the counter-based generator on the device, seeded by the
job seed, the layer and the step (see rbm.cl).  Evaluation phases run the positive phase and
one reconstruction from a sample and report its error, as SINGA's CD test does.
"""
from __future__ import annotations

from singa_dsl.errors import SingaConfigError
from .emit import Emitter, b, f, i
from .lower import ALGORITHM_LOWERINGS, lower_with
from .ops import rbm_cl
from .program import CheckedProgram

METRIC = {"name": "reconstruction_error", "reduce": "sum", "perplexity": False}


def rbm_layer(program: CheckedProgram):
    rbms = [l for l in program.net.layers if l.op == "rbm"]
    if len(rbms) != 1:
        raise SingaConfigError(f"algorithm cd trains one rbm layer; the net has {len(rbms)}",
                               program.algorithm.span,
                               "pre-train a stack one rbm per job, loading the earlier ones "
                               "by name with init_from")
    rbm = rbms[0]
    after = [l.name for l in program.net.layers if rbm.name in l.sources]
    if after:
        raise SingaConfigError(f"under algorithm cd the rbm '{rbm.name}' must be the last "
                               f"layer, but {', '.join(after)} read(s) it", rbm.span,
                               "remove the layers after the rbm (train them by bp in a later "
                               "job)")
    return rbm


def lower_cd(program: CheckedProgram):
    rbm = rbm_layer(program)
    k = int(program.algorithm.args.get("k", 1))
    trainable = {p.share_of or p.key for p in rbm.params}

    def train_step(program, em):
        emit_cd(em, rbm, k)

    def eval_step(program, em, phase):
        emit_reconstruction(em, rbm, gibbs=k)

    return lower_with(program, train_step, emit_eval_step=eval_step,
                      updated=lambda p: p.key in trainable, metric=dict(METRIC))


def _buffers(em: Emitter, rbm, halves: int = 1):
    """sample, v⁻, h⁻, err; v⁻ and h⁻ with room for ``halves`` batches of rows (training
    stacks the positive phase under them: emit_cd)."""
    nv, nh = rbm_cl.dims(rbm)
    p = f"{em.prefix}:cd:{rbm.name}"
    return (em.declare(f"{p}:sample", em.batch * nh),
            em.declare(f"{p}:vneg", halves * em.batch * nv),
            em.declare(f"{p}:hneg", halves * em.batch * nh), em.declare(f"{p}:err", em.batch))


def _error(em: Emitter, rbm, v_pos: str, v_neg: str, err: str):
    nv = rbm_cl.dims(rbm)[0]
    em.launch("rbm", "rbm_sq_error", em.batch, (b(v_pos), b(v_neg), b(err), i(em.batch), i(nv)),
              rbm.name, local=8)
    em.extras[rbm.name] = {"loss": err, "correct": None}


def emit_reconstruction(em: Emitter, rbm, gibbs: int):
    """Evaluation: v⁻ from one sample of h⁺, and its squared error."""
    s, v_neg, _, err = _buffers(em, rbm)
    rbm_cl.sample_hidden(em, rbm, em.act(rbm.name), s, gibbs, rbm.name)
    rbm_cl.visible_from_hidden(em, rbm, s, v_neg, rbm.name)
    _error(em, rbm, em.source(rbm, 0), v_neg, err)


def emit_cd(em: Emitter, rbm, k: int):
    nv, nh = rbm_cl.dims(rbm)
    v_pos, h_pos = em.source(rbm, 0), em.act(rbm.name)
    s, v_neg, h_neg, err = _buffers(em, rbm, halves=2)
    h = h_pos
    for g in range(k):
        rbm_cl.sample_hidden(em, rbm, h, s, g, rbm.name)
        rbm_cl.visible_from_hidden(em, rbm, s, v_neg, rbm.name)
        if g == 0:
            _error(em, rbm, v_pos, v_neg, err)
        rbm_cl.hidden_from_visible(em, rbm, v_neg, h_neg, rbm.name)
        h = h_neg
    scale = 1.0 / em.batch
    # [h⁻; h⁺]ᵀ·[v⁻; −v⁺]: the weight statistics as one GEMM over 2B rows, which writes the
    # gradient once (two GEMMs read and wrote it twice) and can apply the update itself
    # (compiler/fuse_update.py)
    rows_h, rows_v = em.batch * nh, em.batch * nv
    em.launch("rbm", "rbm_stack_positive", max(rows_h, rows_v),
              (b(h_pos), b(v_pos), b(h_neg), b(v_neg), i(rows_h), i(rows_v)), rbm.name)
    em.gemm(rbm.name, m=nh, n=nv, k=2 * em.batch, a=h_neg, trans_a=True, b=v_neg,
            c=em.pgrad(rbm, "w"), alpha=scale)
    for slot, neg, pos, n in (("vbias", v_neg, v_pos, nv), ("hbias", h_neg, h_pos, nh)):
        em.launch("rbm", "rbm_bias_grad", n,
                  (b(neg), b(pos), b(em.pgrad(rbm, slot)), i(em.batch), i(n), f(scale)),
                  rbm.name)


ALGORITHM_LOWERINGS["cd"] = lower_cd
