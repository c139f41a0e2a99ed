"""Shared assertion for theorem reports."""


def assert_report_passes(report, theorem: str) -> None:
    """The report is for ``theorem``, states every claim, and every check passed (failures listed)."""
    assert report.theorem == theorem
    assert report.checks and all(isinstance(c.claim, str) and c.claim.strip() for c in report.checks)
    failed = [(c.claim, c.value, c.reference, c.tolerance) for c in report.checks if not c.passed]
    assert report.passed, failed
