"""What changed between two stored scans: findings by fingerprint, people, recording statuses.

Read from the scan database (`scanner.store.database.Store`); `likeness diff` prints it, and the HTML
report of a rescan shows what changed since the previous scan of the same inputs.
"""

from __future__ import annotations

from scanner.models import ScanResult
from scanner.store.database import Store


def scan_changes(database: Store, old_id: str, new_id: str) -> dict:
    """The changes from scan `old_id` to scan `new_id`, as a JSON-ready dict.

    Keys: old, new (the ids); new_findings, resolved_findings (finding documents, matched by
    fingerprint); unchanged_findings (a count); new_people, gone_people (people rows, matched by
    subject id, else by person id); status_changes ({path, old, new} for each recording in both
    scans whose status, ok, partial or unreadable, differs).
    """
    before = {f["fingerprint"]: f for f in database.findings(old_id)}
    after = {f["fingerprint"]: f for f in database.findings(new_id)}

    def key(person: dict) -> str:
        return f"subject:{person['subject_id']}" if person["subject_id"] else f"person:{person['person_id']}"

    people_before = {key(p): p for p in database.people(old_id)}
    people_after = {key(p): p for p in database.people(new_id)}
    status_before, status_after = database.recording_statuses(old_id), database.recording_statuses(new_id)
    return {
        "old": old_id,
        "new": new_id,
        "new_findings": [f for fp, f in after.items() if fp not in before],
        "resolved_findings": [f for fp, f in before.items() if fp not in after],
        "unchanged_findings": len(set(before) & set(after)),
        "new_people": [p for k, p in people_after.items() if k not in people_before],
        "gone_people": [p for k, p in people_before.items() if k not in people_after],
        # a recording analysed whole before and only partly now (or the other way round)
        "status_changes": [{"path": path, "old": status_before[path], "new": status}
                           for path, status in status_after.items()
                           if path in status_before and status_before[path] != status],
    }


def changes_since_previous(database: Store, result: ScanResult) -> dict | None:
    """`scan_changes` from the last complete scan of the same inputs to `result`; None when there is none."""
    previous = next(
        (row for row in database.scans()
         if row.scan_id != result.scan_id and row.status == "complete" and row.inputs == result.inputs),
        None,
    )
    return scan_changes(database, previous.scan_id, result.scan_id) if previous else None


def describe_changes(changes: dict) -> list[str]:
    """`scan_changes` as the lines `likeness diff` prints."""
    lines = [f"{changes['old']} -> {changes['new']}"]
    for label, key in (("new findings", "new_findings"), ("resolved findings", "resolved_findings")):
        lines.append(f"{label}: {len(changes[key])}")
        for f in changes[key]:
            who = f.get("person_id") or "-"
            lines.append(f"  {f.get('severity', ''):8} {f.get('rule_id', '')} {who}: {f.get('title', '')} "
                         f"[{f['fingerprint'][:12]}]")
    lines.append(f"unchanged findings: {changes['unchanged_findings']}")
    for label, key in (("new people", "new_people"), ("people no longer found", "gone_people")):
        lines.append(f"{label}: {len(changes[key])}")
        for p in changes[key]:
            name = f" ({p['name']})" if p.get("name") else ""
            lines.append(f"  {p['person_id']}{name} {p.get('combined_tier') or ''}")
    lines.append(f"recordings that changed status: {len(changes['status_changes'])}")
    lines += [f"  {c['path']}: {c['old']} -> {c['new']}" for c in changes["status_changes"]]
    return lines
