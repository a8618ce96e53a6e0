# Sourced by tools/arm64/check: build (once) an arm64 Debian bookworm Python 3.11 root and
# an aarch64 site-packages for the project, in $ARM64_CACHE, without touching the host's
# dpkg database.
#
# Route: a private apt configuration whose architecture is arm64 (its own lists and
# status file under $ARM64_CACHE/apt) resolves python3.11's dependency closure, `apt-get
# download` fetches those .debs, `dpkg-deb -x` unpacks them into $ARM64_CACHE/root, and
# qemu-aarch64-static runs the root's own /usr/bin/python3.11 with `-L root` (its dynamic
# loader and libraries come from the root). The same Debian packages a debootstrap would
# install for python3.11, without the base system and without running maintainer scripts
# under emulation (none of these packages needs one to run Python).
# The project's dependencies come from PyPI's aarch64 wheels (`pip install --platform
# manylinux2014_aarch64 --only-binary=:all: --target`), run on the host: the same files
# pip would install on an arm64 machine, at the versions the host's .venv has.

ARM64_CACHE=${SLABEMU_ARM64_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/slabemu/arm64}
ARM64_ROOT=$ARM64_CACHE/root
ARM64_SITE=$ARM64_CACHE/site
ARM64_QEMU=${ARM64_QEMU:-qemu-aarch64-static}
# What the root holds; a change of this list rebuilds it.
ARM64_PACKAGES="python3.11 libstdc++6 libgcc-s1"

arm64_apt() {
    # apt-get/apt-cache with a private arm64 state: the host's dpkg never sees arm64.
    local tool=$1; shift
    "$tool" -q -o APT::Architecture=arm64 -o APT::Architectures::=arm64 \
        -o Dir::State="$ARM64_CACHE/apt/state" -o Dir::State::status="$ARM64_CACHE/apt/status" \
        -o Dir::Cache="$ARM64_CACHE/apt/cache" -o Dir::Etc::SourceList="$ARM64_CACHE/apt/sources.list" \
        -o Dir::Etc::SourceParts=/nonexistent -o Debug::NoLocking=1 "$@"
}

arm64_host_tools() {
    # qemu-user-static on the host (the only host package this needs).
    if ! command -v "$ARM64_QEMU" >/dev/null; then
        echo "arm64: installing qemu-user-static on the host" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user-static >&2 \
            || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user-static >&2; }
    fi
    command -v dpkg-deb >/dev/null || { echo "arm64: dpkg-deb is needed (a Debian host)" >&2; return 2; }
}

arm64_root() {
    local want
    want=$(echo "$ARM64_PACKAGES" | sha256sum | cut -d' ' -f1)
    if [ -f "$ARM64_ROOT/.slabemu-root" ] && [ "$(cat "$ARM64_ROOT/.slabemu-root")" = "$want" ]; then
        return 0
    fi
    echo "arm64: building the arm64 root in $ARM64_ROOT" >&2
    rm -rf "$ARM64_ROOT" "$ARM64_CACHE/apt/state/lists"
    mkdir -p "$ARM64_CACHE/apt/state/lists/partial" "$ARM64_CACHE/apt/cache/archives/partial" "$ARM64_CACHE/debs" "$ARM64_ROOT"
    : > "$ARM64_CACHE/apt/status"
    # The host's Debian sources (deb822 or one-line), restricted to arm64.
    {
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
            [ -f "$f" ] || continue
            case "$f" in
            *.sources)
                awk 'BEGIN{RS="";FS="\n"} /URIs:[^\n]*debian/ {
                        for (i=1;i<=NF;i++) { split($i,kv,": "); v[kv[1]]=kv[2] }
                        n=split(v["Suites"],s," ");
                        for (j=1;j<=n;j++) print "deb [arch=arm64 signed-by=" v["Signed-By"] "] " v["URIs"] " " s[j] " " v["Components"];
                        delete v }' "$f" ;;
            *) grep -E '^deb .*debian' "$f" | sed -E 's/^deb (\[[^]]*\] )?/deb [arch=arm64] /' ;;
            esac
        done
    } | sort -u > "$ARM64_CACHE/apt/sources.list"
    [ -s "$ARM64_CACHE/apt/sources.list" ] || { echo "arm64: no Debian source found in /etc/apt" >&2; return 1; }
    arm64_apt apt-get update >&2
    # The dependency closure (Depends and Pre-Depends, no Recommends), real packages only.
    local pkgs
    pkgs=$(arm64_apt apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
            --no-breaks --no-replaces --no-enhances $ARM64_PACKAGES \
        | grep -E '^[a-z0-9]' | sed 's/:arm64$//' | sort -u \
        | while read -r p; do arm64_apt apt-cache show "$p" >/dev/null 2>&1 && echo "$p"; done)
    echo "arm64: $(echo "$pkgs" | wc -w) packages: $(echo $pkgs)" >&2
    (cd "$ARM64_CACHE/debs" && rm -f ./*.deb && arm64_apt apt-get download $(for p in $pkgs; do echo "$p:arm64"; done) >&2)
    local d
    for d in "$ARM64_CACHE"/debs/*.deb; do dpkg-deb -x "$d" "$ARM64_ROOT"; done
    # Debian's usrmerge links (bookworm's base-files ships them only through its scripts).
    for d in bin sbin lib; do [ -e "$ARM64_ROOT/$d" ] || ln -s "usr/$d" "$ARM64_ROOT/$d"; done
    "$ARM64_QEMU" -L "$ARM64_ROOT" "$ARM64_ROOT/usr/bin/python3.11" -c 'import platform, ssl, ctypes, multiprocessing; print("arm64: root python", platform.python_version(), platform.machine())' >&2
    echo "$want" > "$ARM64_ROOT/.slabemu-root"
}

arm64_site() {
    # aarch64 wheels of the project's dependencies at the host venv's versions, then the
    # project itself is imported from the source tree (PYTHONPATH), as an editable install.
    local repo=$1 req want
    req=$("$repo/.venv/bin/python" -m pip freeze --exclude-editable --disable-pip-version-check 2>/dev/null | grep -v '^#' | grep -v '^-e ')
    want=$( (echo "$req"; cat "$repo/pyproject.toml") | sha256sum | cut -d' ' -f1)
    if [ -f "$ARM64_SITE/.slabemu-site" ] && [ "$(cat "$ARM64_SITE/.slabemu-site")" = "$want" ]; then
        return 0
    fi
    echo "arm64: installing aarch64 wheels into $ARM64_SITE" >&2
    rm -rf "$ARM64_SITE"
    echo "$req" > "$ARM64_CACHE/requirements.txt"
    "$repo/.venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
        --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 --platform manylinux_2_17_aarch64 \
        --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none \
        --only-binary=:all: --target "$ARM64_SITE" -r "$ARM64_CACHE/requirements.txt" >&2
    echo "$want" > "$ARM64_SITE/.slabemu-site"
}

arm64_python() {
    # Run the root's python3.11 under emulation with the aarch64 site-packages and the
    # project's source tree on its path; its own numba cache (machine code is per arch).
    PYTHONPATH="$ARM64_SITE:$ARM64_REPO" NUMBA_CACHE_DIR="$ARM64_CACHE/numba" \
        "$ARM64_QEMU" -L "$ARM64_ROOT" "$ARM64_ROOT/usr/bin/python3.11" "$@"
}
