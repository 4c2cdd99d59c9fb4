# vk_env.sh — sourced by the GPU benchmark scripts (vk_bench.sh,
# vk_stream.sh) on the device machine: unpacks the Vulkan loader and glvnd
# libraries from .gl/ (../shared/docs/DEVICE.md; .gl/extra/ may hold
# libsqlite3-0 for a machine without it), prints the card, and points the
# loader at NVIDIA's ICD (writing one if the machine has none).
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
ldconfig -p | grep -q libsqlite3.so.0 || { mkdir -p /tmp/x; for f in .gl/extra/*.deb; do dpkg -x "$f" /tmp/x; done; export LD_LIBRARY_PATH=/tmp/x/usr/lib/x86_64-linux-gnu; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
ICD=$(ls /usr/local/nvidia/share/vulkan/icd.d/nvidia*.json /usr/share/vulkan/icd.d/nvidia*.json /etc/vulkan/icd.d/nvidia*.json 2>/dev/null | head -1)
[ -z "$ICD" ] && ICD=$(find /usr /etc /opt -name 'nvidia_icd*.json' 2>/dev/null | head -1)
if [ -z "$ICD" ]; then
  L=$(find /usr/local/nvidia /usr/lib /usr/lib64 -name 'libGLX_nvidia.so.0' 2>/dev/null | head -1)
  ICD=/tmp/nvidia_icd.json
  printf '{"file_format_version":"1.0.0","ICD":{"library_path":"%s","api_version":"1.3.0"}}\n' "$L" > $ICD
fi
echo "ICD $ICD"
export VK_DRIVER_FILES=$ICD VK_ICD_FILENAMES=$ICD
