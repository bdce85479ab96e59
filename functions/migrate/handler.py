"""Apply the database migrations: the CloudFormation custom resource run on every deploy.

CloudFormation sends Create on the first deploy and Update on every later one (the
resource carries a deploy timestamp), and both apply whatever migrations the database
lacks; `migrate` takes an advisory lock, so overlapping runs wait for each other.
Delete does nothing: the schema lives as long as the cluster, whose removal policy
decides what happens to the data. A raised exception fails the deployment, and the
custom-resource provider reports its message to CloudFormation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from ragline.config import get_settings
from ragline.store import migrate

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()

# One migration resource per stack; keeping its id stable means an Update never looks
# like a replacement (which would make CloudFormation send a Delete for the old id).
PHYSICAL_RESOURCE_ID = "ragline-migrations"
APPLYING_REQUESTS = frozenset({"Create", "Update"})


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Handle a custom-resource event from the `custom_resources.Provider` framework."""
    request = event["RequestType"]
    physical_id = event.get("PhysicalResourceId") or PHYSICAL_RESOURCE_ID
    if request == "Delete":
        logger.info("delete requested: the database keeps its schema")
        return {"PhysicalResourceId": physical_id}
    if request not in APPLYING_REQUESTS:
        raise ValueError(f"unknown custom resource request type {request!r}")

    applied = migrate(get_settings())
    logger.info("migrations applied", extra={"request": request, "applied": applied})
    return {
        "PhysicalResourceId": physical_id,
        "Data": {"Applied": ",".join(str(version) for version in applied)},
    }
