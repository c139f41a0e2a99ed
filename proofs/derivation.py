"""A small engine for executable derivations: each step is a claim that sympy checks, exactly, when added.

A :class:`Derivation` is a theorem statement followed by definitions (:meth:`Derivation.let`) and
numbered steps. A step is

* an identity ``lhs = rhs`` (:meth:`Derivation.equal`): ``lhs - rhs`` must reduce to 0 under one of
  sympy's exact rewrites (expand; cancel; radsimp then cancel; sums split, evaluated and compared with
  canonical indices; simplify). Unevaluated ``Derivative``, ``Subs``, ``Limit``, ``Sum``, ``Expectation``
  and ``Trace`` objects are evaluated first, so derivatives, expectations and limits (``sympy.limit``)
  are identities too; explicit matrices are compared entry by entry;
* an inequality ``lhs > rhs`` (or <, >=, <=; :meth:`Derivation.compare`): ``lhs - rhs`` must equal a
  *witness* by the identity check, and sympy's assumptions (``is_positive`` and friends) must prove
  the witness's sign from the symbols' declared assumptions (an unknown sign fails). Without a witness,
  ``lhs - rhs`` itself (as written, expanded or simplified) must have a provable sign.

No step is ever checked numerically. ``where`` substitutes into a step, in order, before it is checked
(and again after evaluation): a change of variables that makes a sign manifest (s = (1 + u)/C with
u > 0), an index range (d = j + r with r >= 0), or explicit matrices for a matrix identity. A step that
fails raises :class:`ProofError`, naming the step and what is left over, and is not recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.matrices.expressions import MatrixExpr
from sympy.stats import Expectation

Relation = Literal["=", "<", "<=", ">", ">="]
Term = sp.Basic | int  # anything sympify turns into an expression

_SIGN = {">": "is_positive", ">=": "is_nonnegative", "<": "is_negative", "<=": "is_nonpositive"}
_LATEX = {"=": "=", "<": "<", "<=": r"\le", ">": ">", ">=": r"\ge"}
_SCALAR_REWRITES = (
    sp.expand,
    sp.cancel,
    lambda e: sp.cancel(sp.radsimp(e)),
    lambda e: sp.simplify(sp.expand(e).doit().as_dummy()),  # sums split, evaluated, bound indices canonical
    sp.simplify,
)
_MATRIX_REWRITES = (sp.expand, sp.simplify)
_INFINITIES = (sp.oo, -sp.oo, sp.zoo)


class ProofError(AssertionError):
    """A step that does not hold. A derivation is a chain of assertions, hence an AssertionError.

    The message names the derivation, the step and the residual; ``derivation`` holds the steps
    checked before the failure, ``step`` the step that failed.
    """

    def __init__(self, message: str, derivation: Derivation, step: Step):
        super().__init__(message)
        self.derivation = derivation
        self.step = step


@dataclass(frozen=True)
class Definition:
    """``name := value``; name is a symbol, an undefined function applied to symbols, f(x), or an indexed x[i]."""

    name: sp.Expr
    value: sp.Expr
    meaning: str

    def expand(self, expr: sp.Basic) -> sp.Basic:
        """expr with the name replaced by its value: f(y) by the value at x = y, and x[j] by the value at i = j."""
        if isinstance(self.name, AppliedUndef):
            return expr.replace(self.name.func, sp.Lambda(self.name.args, self.value))
        if isinstance(self.name, sp.Indexed):
            at = lambda e: self.value.xreplace(dict(zip(self.name.indices, e.indices)))
            return expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base == self.name.base, at)
        return expr.xreplace({self.name: self.value})

    @property
    def latex(self) -> str:
        return rf"{sp.latex(self.name)} := {sp.latex(self.value)}"


@dataclass(frozen=True)
class Step:
    """One checked claim: ``lhs relation rhs``, with its witness and substitutions, if any."""

    number: int
    statement: str
    lhs: sp.Basic
    relation: Relation
    rhs: sp.Basic
    witness: sp.Basic | None = None
    where: Mapping[sp.Basic, sp.Basic] = field(default_factory=dict)

    @property
    def latex(self) -> str:
        """The claim in LaTeX: ``lhs = rhs``, or ``lhs - rhs = witness > 0``, then the substitutions."""
        lhs, rhs, relation = sp.latex(self.lhs), sp.latex(self.rhs), _LATEX[self.relation]
        if self.witness is None:
            claim = f"{lhs} {relation} {rhs}"
        else:
            difference = lhs if self.rhs == 0 else rf"{lhs} - \left({rhs}\right)"
            claim = rf"{difference} = {sp.latex(self.witness)} {relation} 0"
        if not self.where:
            return claim
        shown = self.lhs.free_symbols | self.rhs.free_symbols
        new = set().union(*(value.free_symbols for value in self.where.values())) - shown
        signs = [rf"{sp.latex(x)} > 0" if x.is_positive else rf"{sp.latex(x)} \ge 0" for x in new if x.is_nonnegative]
        substitutions = [rf"{sp.latex(key)} = {sp.latex(value)}" for key, value in self.where.items()]
        return claim + r" \qquad \text{at } " + r",\ ".join(substitutions + sorted(signs))


@dataclass
class Derivation:
    """A theorem (name, title, statement) and its checked steps, with the conclusion they support.

    ``corrections`` lists what the steps establish against the paper's printed statement.
    """

    name: str
    title: str
    statement: str
    entries: list[Definition | Step] = field(default_factory=list)
    conclusion: str = ""
    corrections: list[str] = field(default_factory=list)

    @property
    def steps(self) -> list[Step]:
        return [entry for entry in self.entries if isinstance(entry, Step)]

    def let(self, name: sp.Expr, value: sp.Expr, meaning: str) -> sp.Expr:
        """Define ``name := value``; later steps may use the name, and are checked with the value."""
        self.entries.append(Definition(name, value, meaning))
        return name

    def equal(self, statement: str, lhs: Term, rhs: Term, *, where: Mapping | None = None) -> Step:
        """Add and check the identity ``lhs = rhs``."""
        return self._add(statement, lhs, "=", rhs, None, where)

    def compare(
        self,
        statement: str,
        lhs: Term,
        relation: Relation,
        rhs: Term = 0,
        *,
        witness: Term | None = None,
        where: Mapping | None = None,
    ) -> Step:
        """Add and check ``lhs relation rhs``, via ``lhs - rhs = witness`` when a witness is given."""
        if relation not in _SIGN:
            raise ValueError(f"relation must be one of {sorted(_SIGN)}, got {relation!r}")
        return self._add(statement, lhs, relation, rhs, witness, where)

    def _add(
        self, statement: str, lhs: Term, relation: Relation, rhs: Term, witness: Term | None, where: Mapping | None
    ) -> Step:
        witness = None if witness is None else sp.sympify(witness)
        step = Step(len(self.steps) + 1, statement, sp.sympify(lhs), relation, sp.sympify(rhs), witness, dict(where or {}))
        failure = self._failure(step)
        if failure:
            raise ProofError(f"{self.name}, step {step.number} ({statement}): {failure}", self, step)
        self.entries.append(step)
        return step

    def _failure(self, step: Step) -> str:
        """Why ``step`` does not hold, or "" when it does."""
        lhs, rhs = self._evaluate(step.lhs, step.where), self._evaluate(step.rhs, step.where)
        if step.relation == "=":
            if lhs in _INFINITIES or rhs in _INFINITIES:
                return "" if lhs == rhs else f"the left side is {lhs}, the right side {rhs}"
            residual = _residual(_scalar(lhs) - _scalar(rhs))
            return "" if _is_zero(residual) else f"lhs - rhs reduces to {residual}, not 0"
        sign = _SIGN[step.relation]
        difference = _scalar(lhs) - _scalar(rhs)
        if step.witness is None:
            candidates = (difference, sp.expand(difference), sp.simplify(difference))
            if any(getattr(candidate, sign) for candidate in candidates):
                return ""
            return f"sympy cannot prove lhs - rhs = {candidates[-1]} {step.relation} 0 from the symbols' assumptions"
        witness = self._evaluate(step.witness, step.where)
        residual = _residual(difference - witness)
        if not _is_zero(residual):
            return f"lhs - rhs differs from the witness {witness} by {residual}"
        if not getattr(witness, sign):
            return f"sympy cannot prove the witness {witness} {step.relation} 0 ({sign} is {getattr(witness, sign)})"
        return ""

    def _evaluate(self, expr: sp.Basic, where: Mapping) -> sp.Basic:
        """Definitions expanded, unevaluated objects evaluated; the substitutions are made, in order, before
        evaluation and again after it (which can produce what they match, e.g. a symmetric matrix's transpose)."""
        substitutions = [(key, self._expand(value)) for key, value in where.items()]
        return _doit(self._expand(expr).subs(substitutions)).subs(substitutions)

    def _expand(self, expr: sp.Basic) -> sp.Basic:
        for definition in reversed([entry for entry in self.entries if isinstance(entry, Definition)]):
            expr = definition.expand(expr)
        return expr


def _residual(expr: sp.Basic) -> sp.Basic:
    """0 if an exact rewrite of expr reaches 0 (entrywise for explicit matrices); else expr simplified."""
    if isinstance(expr, sp.MatrixBase):
        return expr.applyfunc(_residual)
    rewritten = expr
    for rewrite in _MATRIX_REWRITES if isinstance(expr, MatrixExpr) else _SCALAR_REWRITES:
        try:
            rewritten = rewrite(expr)
        except Exception:  # sympy's simplifiers can fail internally (e.g. sum_simplify); a failed rewrite proves nothing
            continue
        if _is_zero(rewritten):
            break
    return rewritten


def _is_zero(expr: sp.Basic) -> bool:
    if isinstance(expr, sp.MatrixBase):
        return all(entry == 0 for entry in expr)
    return expr == 0 or isinstance(expr, sp.ZeroMatrix)


def _scalar(expr: sp.Basic) -> sp.Basic:
    """A 1 x 1 explicit matrix (a quadratic form) as its entry; anything else unchanged."""
    return expr[0, 0] if isinstance(expr, sp.MatrixBase) and expr.shape == (1, 1) else expr


def _doit(expr: sp.Basic) -> sp.Basic:
    """Evaluate the unevaluated objects in expr: sympy's ``doit``, after three rewrites it needs.

    * Matrix expressions over explicit matrices are evaluated plainly, bottom-up: Identity(n) of a concrete
      size becomes eye(n), inverses are taken by ``inv()`` and integer powers as products (``doit``
      simplifies at every elimination step and is far slower).
    * Derivatives of matrix expressions go through ``MatrixExpr.diff`` (``Derivative.doit`` cannot
      differentiate a matrix product).
    * Expectations are split by linearity first (far faster than integrating the whole expression).
    """

    def explicit(e: sp.Basic) -> sp.Basic:
        if isinstance(e, sp.Identity):
            return sp.ImmutableMatrix(sp.eye(e.rows)) if e.rows.is_Integer else e
        arg = e.args[0].doit()
        if not isinstance(arg, sp.MatrixBase):
            return e
        if isinstance(e, sp.Inverse):
            return sp.ImmutableMatrix(arg.inv())
        return sp.ImmutableMatrix(sp.prod([arg] * int(e.exp), start=sp.eye(arg.rows)))

    power = lambda e: isinstance(e, sp.MatPow) and e.exp.is_Integer and e.exp > 0
    expr = expr.replace(lambda e: isinstance(e, (sp.Identity, sp.Inverse)) or power(e), explicit)
    matrix_derivative = lambda e: isinstance(e, sp.Derivative) and isinstance(e.expr, MatrixExpr)
    expr = expr.replace(matrix_derivative, lambda e: e.expr.diff(*e.variables))
    expr = expr.replace(lambda e: isinstance(e, Expectation), lambda e: e.expand())
    return expr.doit()
