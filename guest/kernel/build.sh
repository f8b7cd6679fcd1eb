#!/bin/sh
# Builds the guest Linux kernel: Debian's linux-source tarball, `make tinyconfig`, the fsvm.config
# fragment, then `make bzImage` (which also links vmlinux). Driven by guest/image (src/kernel.rs),
# which decides where the work tree and the outputs live and caches the result; this script only
# runs the kernel's own build, which has no interface other than make.
#
# usage: build.sh TARBALL WORKDIR FRAGMENT OUTDIR JOBS
#   TARBALL   /usr/src/linux-source-6.1.tar.xz
#   WORKDIR   scratch directory (emptied first; about 1.5 GB once built)
#   FRAGMENT  absolute path of the Kconfig fragment
#   OUTDIR    existing directory that receives vmlinux, bzImage and config
#   JOBS      make -j
set -eu
tarball=$1 work=$2 fragment=$3 out=$4 jobs=$5

rm -rf "$work"
mkdir -p "$work"
echo "build.sh: unpacking $tarball"
tar -C "$work" -xf "$tarball"
cd "$work"/linux-source-*

echo "build.sh: configuring (tinyconfig + $fragment)"
make -s ARCH=x86_64 tinyconfig
scripts/kconfig/merge_config.sh -m .config "$fragment" >/dev/null
make -s ARCH=x86_64 olddefconfig

# Kconfig drops requests whose dependencies are unmet without a word: insist on every line.
bad=0
while read -r line; do
    case "$line" in
    CONFIG_*=*)
        grep -qxF "$line" .config || { echo "build.sh: $line did not survive olddefconfig" >&2; bad=1; } ;;
    "# CONFIG_"*" is not set")
        opt=${line#\# }
        opt=${opt%% is not set}
        if grep -q "^$opt=" .config; then echo "build.sh: $opt is still set" >&2; bad=1; fi ;;
    esac
done <"$fragment"
[ "$bad" = 0 ] || exit 1

echo "build.sh: make -j$jobs bzImage"
make ARCH=x86_64 -j"$jobs" bzImage
cp vmlinux "$out"/vmlinux
cp arch/x86/boot/bzImage "$out"/bzImage
cp .config "$out"/config
echo "build.sh: done"
