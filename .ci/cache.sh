# Sourced by the .ci build scripts: where built peers are cached, and phase timing.
# Binaries live outside the clone (a clean clone reuses them) in a folder keyed by version;
# IGW_CACHE_DIR moves it. Go's own build and module caches make a rebuild after a wipe fast too.
IGW_CACHE_DIR="${IGW_CACHE_DIR:-$HOME/.cache/inference-gateway}"
export IGW_CACHE_DIR
mkdir -p "$IGW_CACHE_DIR"

phase_start() { PHASE_NAME="$1"; PHASE_T0=$(date +%s); echo "== phase: $PHASE_NAME"; }
phase_end() { echo "== phase: $PHASE_NAME took $(( $(date +%s) - PHASE_T0 )) s"; }
