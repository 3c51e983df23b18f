"""Driver side of jumpstarter: the `Driver` base class and the export decorators.

Importing this package is cheap: it pulls in neither gRPC nor pydantic.
"""

from jumpstarter.driver.base import Driver
from jumpstarter.driver.composite import Composite
from jumpstarter.driver.decorators import export, exportstream

__all__ = ["Composite", "Driver", "export", "exportstream"]
