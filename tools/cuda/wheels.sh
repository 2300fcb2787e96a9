# Sourced by the CUDA tool scripts: installs pinned PyPI wheels into the tools cache once.
# cuda_wheels NAME WHEEL...: installs the wheels (if not yet) under $CACHE/NAME-<hash of the list> and sets
# CUDA_WHEELS_DIR to that folder (the wheels' files under site/); NEEDED, if set, is a path relative to it
# that must exist for the install to count as done.
cuda_wheels() {
  local name="$1"; shift
  local cache="${JAMBA_TOOLS_CACHE:-$HOME/.cache/jamba-serving}"
  local key; key="$(printf '%s\n' "$@" | sha256sum | cut -c1-12)"
  CUDA_WHEELS_DIR="$cache/$name-$key"
  [[ -e "$CUDA_WHEELS_DIR/${NEEDED:-site}" ]] && return 0
  command -v python3 >/dev/null || { echo "cuda wheels: python3 with pip is needed to install $*" >&2; return 1; }
  echo "cuda wheels: installing $* into $CUDA_WHEELS_DIR (once)" >&2
  rm -rf "$CUDA_WHEELS_DIR.partial"
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$CUDA_WHEELS_DIR.partial/site" "$@" >&2
  rm -rf "$CUDA_WHEELS_DIR"
  mv "$CUDA_WHEELS_DIR.partial" "$CUDA_WHEELS_DIR"
}
