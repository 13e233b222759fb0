#!/usr/bin/env bash
# Make sure a Vulkan driver is present; on a machine without one, install Mesa's software
# driver (lavapipe). Debian/Ubuntu: mesa-vulkan-drivers. Safe to run repeatedly.
set -euo pipefail

have_icd() {
    local d
    for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
        compgen -G "$d/*.json" >/dev/null && return 0
    done
    [ -n "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ]
}

have_loader() {
    ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'
}

if have_icd && have_loader; then
    exit 0
fi

echo "No Vulkan driver found: installing Mesa's software Vulkan driver (lavapipe)." >&2
if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
            echo "Run as root or install it yourself: apt-get install mesa-vulkan-drivers" >&2
            exit 1
        fi
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
elif command -v dnf >/dev/null 2>&1; then
    sudo dnf install -y mesa-vulkan-drivers vulkan-loader
else
    echo "Install your distribution's Mesa Vulkan drivers (lavapipe) and the Vulkan loader." >&2
    exit 1
fi
