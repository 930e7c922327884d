# Domus build. Out-of-tree objects in $(BUILD); binaries in $(BUILD)/bin.
BUILD   ?= build
PREFIX  ?= /usr/local
CC      ?= gcc
CLANG   ?= clang
OPT     ?= -O2
CPPFLAGS := -Isrc/include -D_GNU_SOURCE -D__XEN_INTERFACE_VERSION__=0x00040e00
CFLAGS  := -std=gnu11 -Wall -Wextra -Werror $(OPT) -g -MMD -MP -pthread
LDLIBS  := -ljson-c -lz -llzma -lzstd -llz4 -luring -lseccomp -pthread
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# Every .c under src/ except *_main.c goes into the library (src/vm: domus-vm's, vm.h).
LIB_SRC := $(filter-out %_main.c,$(wildcard src/*/*.c))
MAINS   := $(wildcard src/*/*_main.c)
# Binary name for each main: src/cli/domus_main.c -> domus, domus_vm_main.c -> domus-vm
bin_of   = $(subst _,-,$(patsubst %_main,%,$(notdir $(basename $(1)))))
BINS    := $(foreach m,$(MAINS),$(BUILD)/bin/$(call bin_of,$(m)))

LIB_OBJ      := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
ASAN_LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/asan/%.o)
UNIT_SRC     := $(wildcard tests/unit/test_*.c)
UNIT_BINS    := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/unit/%)
ASAN_BINS    := $(foreach m,$(MAINS),$(BUILD)/asan-bin/$(call bin_of,$(m)))

.PHONY: all setup check demo install unit asan-bins clean format setup-kvm bench
all: $(BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@
$(BUILD)/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -O1 $(SAN) -c $< -o $@

$(BUILD)/libdomus.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
$(BUILD)/libdomus-asan.a: $(ASAN_LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

define bin_rule
$(BUILD)/bin/$(call bin_of,$(1)): $(BUILD)/obj/$(1:.c=.o) $(BUILD)/libdomus.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) -o $$@ $$^ $$(LDLIBS)
$(BUILD)/asan-bin/$(call bin_of,$(1)): $(BUILD)/asan/$(1:.c=.o) $(BUILD)/libdomus-asan.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$(SAN) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach m,$(MAINS),$(eval $(call bin_rule,$(m))))

$(BUILD)/unit/%: tests/unit/%.c $(BUILD)/libdomus-asan.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests/unit $(CFLAGS) -O1 $(SAN) -o $@ $< $(BUILD)/libdomus-asan.a $(LDLIBS)

asan-bins: $(ASAN_BINS)

# libFuzzer target for xenstored (clang): make fuzz -> build/fuzz/xenstore_fuzz
FUZZ_CFLAGS := -std=gnu11 -Wall -Wextra -Werror -g -O1 -fsanitize=fuzzer,address,undefined \
               -fno-sanitize-recover=undefined
XS_FUZZ_SRC := tests/fuzz/xenstore_fuzz.c $(wildcard src/xenstore/xs_*.c) src/hv/util.c \
               src/vm/vmctl.c
$(BUILD)/fuzz/xenstore_fuzz: $(XS_FUZZ_SRC) $(wildcard src/xenstore/*.h) src/include/domus/xenstore.h \
                             src/include/domus/vmctl.h
	@mkdir -p $(dir $@)
	$(CLANG) $(CPPFLAGS) $(FUZZ_CFLAGS) -o $@ $(XS_FUZZ_SRC) -ljson-c
# ... for blkback's and netback's request paths -> build/fuzz/backend_fuzz
BE_FUZZ_SRC := tests/fuzz/backend_fuzz.c src/backends/blkback.c src/backends/netback.c \
               src/backends/xenbus_be.c src/backends/sandbox.c src/toolstack/ts_xs.c \
               src/toolstack/ts_proto.c $(filter-out %_main.c,$(wildcard src/hv/*.c))
$(BUILD)/fuzz/backend_fuzz: $(BE_FUZZ_SRC) $(wildcard src/include/domus/*.h)
	@mkdir -p $(dir $@)
	$(CLANG) $(CPPFLAGS) $(FUZZ_CFLAGS) -o $@ $(BE_FUZZ_SRC) $(LDLIBS)
# ... for the domain builder's kernel images (bzImage, decompressors, ELF loader)
#     -> build/fuzz/builder_fuzz
BUILDER_FUZZ_SRC := tests/fuzz/builder_fuzz.c $(wildcard src/builder/*.c) src/hv/gmem.c \
                    src/hv/util.c
$(BUILD)/fuzz/builder_fuzz: $(BUILDER_FUZZ_SRC) $(wildcard src/builder/*.h) \
                            $(addprefix src/include/domus/,builder.h gmem.h util.h)
	@mkdir -p $(dir $@)
	$(CLANG) $(CPPFLAGS) $(FUZZ_CFLAGS) -o $@ $(BUILDER_FUZZ_SRC) -lz -llzma -lzstd -llz4
# ... and for the xl.cfg parser and its disk and vif specs -> build/fuzz/xlcfg_fuzz
XLCFG_FUZZ_SRC := tests/fuzz/xlcfg_fuzz.c src/toolstack/xlcfg.c src/toolstack/ts_sched.c src/toolstack/xldisk.c \
                  src/toolstack/xlvif.c src/toolstack/xlspec.c src/hv/util.c
$(BUILD)/fuzz/xlcfg_fuzz: $(XLCFG_FUZZ_SRC) $(addprefix src/include/domus/,xlcfg.h xldisk.h \
                          xlvif.h xlspec.h util.h)
	@mkdir -p $(dir $@)
	$(CLANG) $(CPPFLAGS) $(FUZZ_CFLAGS) -o $@ $(XLCFG_FUZZ_SRC)
# ... and for the save image reader and the modules' loads -> build/fuzz/saveimg_fuzz
SAVEIMG_FUZZ_SRC := tests/fuzz/saveimg_fuzz.c src/vm/saveimg.c src/vm/saveimg_vcpu.c src/vm/vm_lazy.c \
                    $(filter-out src/hv/kvm.c,$(wildcard src/hv/*.c))
$(BUILD)/fuzz/saveimg_fuzz: $(SAVEIMG_FUZZ_SRC) $(addprefix src/include/domus/,saveimg.h \
                            hv_save.h recbuf.h hv.h gmem.h util.h vmlazy.h)
	@mkdir -p $(dir $@)
	$(CLANG) $(CPPFLAGS) $(FUZZ_CFLAGS) -o $@ $(SAVEIMG_FUZZ_SRC) -ljson-c -lz -pthread
# Each fuzzer for FUZZ_RUNS executions (10 million; hours each on 2 cores),
# outside make check; the PASS/FAIL lines go to build/fuzz/long.txt.
FUZZ_RUNS ?= 10000000
fuzz-long:
	@mkdir -p $(BUILD)/fuzz && : >$(BUILD)/fuzz/long.txt
	@rc=0; for t in tests/proto/*-fuzz.sh; do \
	    FUZZ_RUNS=$(FUZZ_RUNS) $$t >>$(BUILD)/fuzz/long.txt 2>&1 || rc=1; done; \
	    cat $(BUILD)/fuzz/long.txt; exit $$rc
.PHONY: fuzz-long
fuzz: $(BUILD)/fuzz/xenstore_fuzz $(BUILD)/fuzz/backend_fuzz $(BUILD)/fuzz/builder_fuzz \
      $(BUILD)/fuzz/xlcfg_fuzz $(BUILD)/fuzz/saveimg_fuzz

# The hostile guest's kernel module (tests/scenarios/60-hostile.sh), built
# against the guest kernel's headers, /usr/src/linux-headers-$(DOMUS_KVER)
# (apt-get install linux-headers-<kver>) -> build/hostile/hostile.ko, and the
# rogue front end of 61-rogue.sh -> build/hostile/rogue.ko.  make check
# goes on without it (60-hostile then fails, saying why).
DOMUS_KVER ?= $(shell . "$${DOMUS_CACHE:-$$HOME/.cache/domus}/env.sh" 2>/dev/null && echo "$$DOMUS_KVER")
KHEADERS ?= /usr/src/linux-headers-$(DOMUS_KVER)
HOSTILE_SRC := $(wildcard tests/hostile/*.c tests/hostile/*.h) tests/hostile/Kbuild
$(BUILD)/hostile/hostile.ko: $(HOSTILE_SRC)
	@test -n "$(DOMUS_KVER)" -a -d "$(KHEADERS)" || { echo "make hostile: no kernel headers \
	    '$(KHEADERS)' (make setup; apt-get install linux-headers-$(DOMUS_KVER))" >&2; exit 1; }
	@mkdir -p $(dir $@)
	cp $(HOSTILE_SRC) $(dir $@)
	$(MAKE) -C $(KHEADERS) M=$(abspath $(dir $@)) modules
hostile: $(BUILD)/hostile/hostile.ko
.PHONY: hostile

# xenstored benchmark: a libxenstore client (libxen-dev) against domus-xenstored
$(BUILD)/bench/xenstore: bench/xenstore.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< -lxenstore
bench-xenstore: $(BUILD)/bin/domus-xenstored $(BUILD)/bench/xenstore
	bench/xenstore.sh
# Domus beside QEMU in the same test host: boot time and memory, disk and network I/O.
bench-boot: setup
	$(MAKE) all
	bench/boot
bench-io: setup
	$(MAKE) all
	bench/io
# Save, eager and lazy restore vs QEMU's migrate to a file and -incoming.
bench-save: setup
	$(MAKE) all
	bench/save
# Idle guests ballooned to 96 MiB held in the same memory budget as QEMU's.
bench-density: setup
	$(MAKE) all
	bench/density
# Live migration's downtime (a 1 ms heartbeat's longest gap) vs QEMU's.
bench-migrate: setup
	$(MAKE) all
	bench/migrate
# A well-behaved guest's I/O alone and beside a rogue one (scenario 61-rogue).
bench-hostile: setup
	bench/hostile
.PHONY: fuzz bench-xenstore bench-boot bench-io bench-save bench-density bench-migrate bench-hostile

# One-time machine set-up (packages, guest kernel, KVM_XEN modules, initramfs).
setup:
	scripts/setup.sh

# KVM with Xen support for the running kernel: the stock one where it has it,
# else kvm modules built with CONFIG_KVM_XEN and loaded.
setup-kvm:
	scripts/kvm-xen.sh setup

unit: $(UNIT_BINS)
	tests/run-unit.sh $(UNIT_BINS)

check: setup
	$(MAKE) all asan-bins $(UNIT_BINS)
	$(MAKE) hostile || echo "check: no hostile.ko: 60-hostile will fail" >&2
	tests/check.sh

demo: setup
	$(MAKE) all
	tests/demo.sh

# Every benchmark (bench/run.sh: bench/boot, bench/io, bench/density, bench/migrate, bench/xenstore.sh).
bench: setup
	$(MAKE) all
	bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/

format:
	clang-format -i $(wildcard src/*/*.c src/include/domus/*.h tests/unit/*.c tests/unit/*.h tests/fuzz/*.c tests/guest/*.c tests/hostile/*.c tests/testhost/*.c)

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
