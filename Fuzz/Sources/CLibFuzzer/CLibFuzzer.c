// The header declares libFuzzer's driver, which libclang_rt.fuzzer provides at link time.
#include "CLibFuzzer.h"
