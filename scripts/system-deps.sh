#!/usr/bin/env bash
# System libraries that napari's canvas needs under Xvfb (Debian/Ubuntu). Skipped when present,
# when not root, or when apt-get is missing (then install them by hand, see docs/install.md).
set -euo pipefail
PACKAGES="xvfb xauth libgl1 libegl1 libopengl0 libgl1-mesa-dri libglx-mesa0 libfontconfig1 libdbus-1-3 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xinerama0"
missing=$(dpkg-query -W -f='${Status} ${Package}\n' $PACKAGES 2>/dev/null | grep -vc "install ok installed" || true)
installed=$(dpkg-query -W -f='${Status}\n' $PACKAGES 2>/dev/null | grep -c "install ok installed" || true)
if [ "$installed" -ge "$(echo $PACKAGES | wc -w)" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != "0" ]; then
  echo "note: cannot install Xvfb libraries (need root and apt-get); viewer tests may be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
