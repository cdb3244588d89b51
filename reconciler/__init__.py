"""reconciler: declarative containers on an embedded engine.

People commit YAML manifests (images, containers, networks, volumes); reconciler diffs the
desired state against the host and converges it. Import submodules where they are used: this
package keeps its top level free of heavy imports so that the CLI starts fast.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
