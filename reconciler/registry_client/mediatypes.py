"""The media types of manifests, indexes and image configs, and the Accept header that asks a
registry for any of them (models.py re-exports them; a re-pull's HEAD, runtime/native/images/
presence.py, asks with ACCEPT_MANIFESTS without importing models' dataclasses, #21)."""

__all__ = ["ACCEPT_MANIFESTS", "CONFIG_TYPES", "DOCKER_CONFIG", "DOCKER_LIST", "DOCKER_MANIFEST", "DOCKER_SCHEMA1",
           "INDEX_TYPES", "MANIFEST_TYPES", "OCI_CONFIG", "OCI_INDEX", "OCI_MANIFEST"]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
CONFIG_TYPES = (OCI_CONFIG, DOCKER_CONFIG)
ACCEPT_MANIFESTS = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))
