// instruction_profile.c: a QEMU TCG plugin that counts, per translated block, the guest
// instructions executed inside the benchmarks' measured loops, for `make profile`
// (tools/profile.py reads its output and names the functions).
//
// The benchmarks mark what they measure with hint instructions, which the CPU executes as NOPs:
//   hint #0x70   a measured region starts: blocks executed from here on are counted;
//   hint #0x71   it stops (a report executes it too, so a report always closes its row);
//   hint #0x72   executed N times in a row by a report: the row has N operations.
// Everything counted between two reports belongs to the second one's row. QEMU 7.2's plugin
// interface cannot read guest registers, so the operation count travels as a repeat count.
//
// Output (`out=FILE`), one line per row and then one per block executed in it:
//   row INDEX OPERATIONS
//   VADDR INSTRUCTIONS FIRST_WORD LAST_WORD EXECUTIONS
// A block's first and last instruction words let the reader tell apart programs whose code sits
// at the same virtual address. Under -icount QEMU runs one vCPU at a time, so the counters need
// no atomics.
//
// QEMU installs no header for plugins; the dozen declarations below are those of its plugin
// interface, version 1 (QEMU 7.x).

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS = 0 };

typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t index);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);

#define EXPORT __attribute__((visibility("default")))
EXPORT int qemu_plugin_version = 1;

enum { MARK_START = 0xd5032e1f, MARK_STOP = 0xd5032e3f, MARK_OPERATION = 0xd5032e5f };

// One row's executions of one translated block.
struct tally {
    struct tally *next;
    uint32_t row;
    uint64_t executions;
};

// One translation of a block (QEMU may translate the same address again; each copy counts alone
// and the output merges equal blocks).
struct block {
    struct block *next;
    uint64_t vaddr;
    uint32_t instructions, first_word, last_word;
    struct tally *tallies; // newest row first
};

static struct block *blocks;
static FILE *output;
static int counting;          // inside a measured region
static int closed = 1;        // a stop was seen since the last operation marker
static uint32_t row;          // the row that counts go to now
static uint64_t *operations;  // per row
static uint32_t rows_capacity;

static void ensure_row(uint32_t index) {
    if (index < rows_capacity) return;
    uint32_t capacity = rows_capacity ? rows_capacity * 2 : 64;
    while (capacity <= index) capacity *= 2;
    operations = realloc(operations, capacity * sizeof *operations);
    if (!operations) abort();
    memset(operations + rows_capacity, 0, (capacity - rows_capacity) * sizeof *operations);
    rows_capacity = capacity;
}

static void block_executed(unsigned int vcpu, void *userdata) {
    (void)vcpu;
    if (!counting) return;
    struct block *block = userdata;
    struct tally *tally = block->tallies;
    if (!tally || tally->row != row) {
        tally = calloc(1, sizeof *tally);
        if (!tally) abort();
        tally->row = row;
        tally->next = block->tallies;
        block->tallies = tally;
    }
    tally->executions++;
}

static void region_started(unsigned int vcpu, void *userdata) { (void)vcpu; (void)userdata; counting = 1; }

static void region_stopped(unsigned int vcpu, void *userdata) {
    (void)vcpu; (void)userdata;
    counting = 0;
    closed = 1;
}

// The first marker of a report's run closes the row that was collecting; the run's length is
// its operation count, and counting goes on in the next row.
static void operation_marked(unsigned int vcpu, void *userdata) {
    (void)vcpu; (void)userdata;
    if (closed) {
        closed = 0;
        row++;
    }
    ensure_row(row - 1);
    operations[row - 1]++;
}

static uint32_t word_at(const struct qemu_plugin_tb *tb, size_t index) {
    const struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, index);
    uint32_t word = 0;
    if (qemu_plugin_insn_size(insn) == 4) memcpy(&word, qemu_plugin_insn_data(insn), 4);
    return word;
}

static void block_translated(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    size_t count = qemu_plugin_tb_n_insns(tb);
    if (count == 0) return;
    struct block *block = calloc(1, sizeof *block);
    if (!block) abort();
    block->vaddr = qemu_plugin_tb_vaddr(tb);
    block->instructions = (uint32_t)count;
    block->first_word = word_at(tb, 0);
    block->last_word = word_at(tb, count - 1);
    block->next = blocks;
    blocks = block;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, block_executed, QEMU_PLUGIN_CB_NO_REGS, block);
    for (size_t index = 0; index < count; index++) {
        qemu_plugin_vcpu_udata_cb_t marker = NULL;
        switch (word_at(tb, index)) {
        case MARK_START: marker = region_started; break;
        case MARK_STOP: marker = region_stopped; break;
        case MARK_OPERATION: marker = operation_marked; break;
        }
        if (marker) qemu_plugin_register_vcpu_insn_exec_cb(qemu_plugin_tb_get_insn(tb, index), marker,
                                                           QEMU_PLUGIN_CB_NO_REGS, NULL);
    }
}

static void finished(qemu_plugin_id_t id, void *userdata) {
    (void)id; (void)userdata;
    if (!output) return;
    // Rows in order; a block's tallies are found by a walk per row (the output is read once).
    for (uint32_t index = 0; index < row; index++) {
        fprintf(output, "row %u %llu\n", index, (unsigned long long)(index < rows_capacity ? operations[index] : 0));
        for (struct block *block = blocks; block; block = block->next)
            for (struct tally *tally = block->tallies; tally; tally = tally->next)
                if (tally->row == index)
                    fprintf(output, "%llx %u %08x %08x %llu\n", (unsigned long long)block->vaddr, block->instructions,
                            block->first_word, block->last_word, (unsigned long long)tally->executions);
    }
    fclose(output);
    output = NULL;
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    (void)info;
    const char *path = "instruction-profile.txt";
    for (int index = 0; index < argc; index++)
        if (strncmp(argv[index], "out=", 4) == 0) path = argv[index] + 4;
    output = fopen(path, "w");
    if (!output) {
        fprintf(stderr, "instruction_profile: cannot write %s\n", path);
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, block_translated);
    qemu_plugin_register_atexit_cb(id, finished, NULL);
    return 0;
}
