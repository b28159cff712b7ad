# Thin driver over CMake for the README's commands.
#   make        build build/ipfs-accelerate and the library (Release)
#   make run    install what is missing, build, fetch the default model, run the demo
#   make test   build, run the suite; rebuild with ASan+UBSan and run it again
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan

.PHONY: all deps build run test test-release test-asan fuzz bench clean format

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@model=$$(scripts/fetch-default-model.sh | tail -n 1) && \
	  scripts/demo.sh "$(BUILD)/ipfs-accelerate" "$$model"

test-release: build
	@model=$$(scripts/fetch-default-model.sh | tail -n 1) && py=$$(scripts/test-python.sh) && \
	  lm=$$(scripts/fetch-smollm2.sh | tail -n 1 || true) && \
	  cd $(BUILD) && IA_DEFAULT_MODEL="$$model" IA_TEST_PYTHON="$$py" IA_SMOLLM2_GGUF="$$lm" ctest --output-on-failure -j $(JOBS)

test-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DIA_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	@# Mesa's GPU Vulkan drivers (radv, anv), loaded and unloaded by the Vulkan
	@# loader inside vkCreateInstance on a machine without their GPUs, leave
	@# allocations behind that LeakSanitizer reports against the unmapped
	@# driver; only the CPU driver (lavapipe), which the probe keeps loaded,
	@# is offered to the sanitized run.
	@model=$$(scripts/fetch-default-model.sh | tail -n 1) && py=$$(scripts/test-python.sh) && \
	  lm=$$(scripts/fetch-smollm2.sh | tail -n 1 || true) && \
	  cd $(ASAN_BUILD) && IA_DEFAULT_MODEL="$$model" IA_TEST_PYTHON="$$py" IA_SMOLLM2_GGUF="$$lm" IA_TEST_SANITIZED=1 \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  VK_LOADER_DRIVERS_SELECT='*lvp*' \
	  ctest --output-on-failure -j $(JOBS)

test: test-release test-asan

fuzz: deps
	@cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
	  -DIA_SANITIZE=ON -DIA_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
