// Emulation builds (-DOCTET_EMU -I cuda/emu/shim) take this header for <cuda_runtime.h>: the emulated runtime.
#pragma once
#include "../emu.h"
