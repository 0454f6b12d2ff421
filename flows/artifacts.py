"""Publish a reviewer artifact pair (markdown summary + table) to Prefect.

The content comes from `monitoring.artifacts` (plain, tested functions); this is the only place
that calls Prefect's artifact API, from inside a flow or task run.
"""

from __future__ import annotations

from typing import Any


def publish(content: Any) -> dict[str, str]:
    """Create the markdown and table artifacts of a `monitoring.artifacts.ArtifactContent`.

    Returns:
        The artifact ids by kind (`markdown`, `table`).
    """
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    markdown = create_markdown_artifact(
        key=content.key, markdown=content.markdown, description=content.description
    )
    table = create_table_artifact(
        key=f"{content.key}-table", table=content.table, description=content.description
    )
    return {"markdown": str(markdown), "table": str(table)}
