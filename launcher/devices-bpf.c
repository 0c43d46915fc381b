/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The device allow list as a BPF_CGROUP_DEVICE program, the cgroup v2 form of
 * the v1 devices controller: generated instruction by instruction from the
 * rules (one block per rule, default deny), loaded and attached to a cgroup2
 * directory through libbpf. The kernel runs it on every open and mknod of a
 * device node by a task of that cgroup: 1 allows, 0 fails it with EPERM.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include "cleanup.h"
#include "launcher.h"
#include "log.h"

#define VR_INSN(c, d, s, o, i) \
	((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})
/* dst = *(u32 *)(src + off) */
#define VR_LDX_W(dst, src, off) VR_INSN(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0)
/* 32-bit dst op= imm, dst = src */
#define VR_ALU32_IMM(op, dst, imm) VR_INSN(BPF_ALU | (op) | BPF_K, dst, 0, 0, imm)
#define VR_MOV32_REG(dst, src) VR_INSN(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0)
/* if (dst != imm) pc += off */
#define VR_JNE_IMM(dst, imm, off) VR_INSN(BPF_JMP | BPF_JNE | BPF_K, dst, 0, off, imm)
#define VR_MOV64_IMM(dst, imm) VR_INSN(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)
#define VR_EXIT() VR_INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

enum { VR_R0, VR_R1, VR_R2, VR_R3, VR_R4, VR_R5 };

static size_t vr_devbpf_block_len(const struct vr_dev_rule *r)
{
	return (r->type != 'a') + (r->access != VR_DEV_RWM ? 3 : 0) + (r->major >= 0) +
	       (r->minor >= 0) + 2;
}

/*
 * r1 = struct bpf_cgroup_dev_ctx *; after the prologue r3 = device type
 * (BPF_DEVCG_DEV_BLOCK/CHAR), r2 = requested access (MKNOD/READ/WRITE bits,
 * the same as VR_DEV_*), r4 = major, r5 = minor, and r1 is scratch. A rule
 * matches when type and numbers match and the access asked for is within
 * what it allows; the first match allows, no match denies.
 */
int vr_devbpf_program(const struct vr_dev_rule *rules, size_t n, struct bpf_insn **ret,
		      size_t *ret_len)
{
	g_autoptr(GArray) p = g_array_new(FALSE, FALSE, sizeof(struct bpf_insn));
	const struct bpf_insn prologue[] = {
		VR_LDX_W(VR_R2, VR_R1, 0), /* access_type */
		VR_MOV32_REG(VR_R3, VR_R2),	  VR_ALU32_IMM(BPF_AND, VR_R3, 0xffff),
		VR_ALU32_IMM(BPF_RSH, VR_R2, 16), VR_LDX_W(VR_R4, VR_R1, 4), /* major */
		VR_LDX_W(VR_R5, VR_R1, 8),				     /* minor */
	};
	const struct bpf_insn deny[] = {VR_MOV64_IMM(VR_R0, 0), VR_EXIT()};

	g_array_append_vals(p, prologue, G_N_ELEMENTS(prologue));
	for (size_t i = 0; i < n; i++) {
		const struct vr_dev_rule *r = &rules[i];
		size_t len = vr_devbpf_block_len(r), start = p->len;
		struct bpf_insn in;

/* Jump to the next block: past the rest of this one. */
#define VR_SKIP() ((short)(len - 1 - (p->len - start)))
		if (r->type == 'b' || r->type == 'c') {
			in = VR_JNE_IMM(VR_R3,
					r->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR,
					VR_SKIP());
			g_array_append_val(p, in);
		} else if (r->type != 'a') {
			return -EINVAL;
		}
		if (r->access & ~(unsigned)VR_DEV_RWM || !r->access)
			return -EINVAL;
		if (r->access != VR_DEV_RWM) {
			in = VR_MOV32_REG(VR_R1, VR_R2);
			g_array_append_val(p, in);
			in = VR_ALU32_IMM(BPF_AND, VR_R1, (int)(~r->access & VR_DEV_RWM));
			g_array_append_val(p, in);
			in = VR_JNE_IMM(VR_R1, 0, VR_SKIP());
			g_array_append_val(p, in);
		}
		if (r->major >= 0) {
			in = VR_JNE_IMM(VR_R4, (int)r->major, VR_SKIP());
			g_array_append_val(p, in);
		}
		if (r->minor >= 0) {
			in = VR_JNE_IMM(VR_R5, (int)r->minor, VR_SKIP());
			g_array_append_val(p, in);
		}
#undef VR_SKIP
		in = VR_MOV64_IMM(VR_R0, 1);
		g_array_append_val(p, in);
		in = VR_EXIT();
		g_array_append_val(p, in);
	}
	g_array_append_vals(p, deny, G_N_ELEMENTS(deny));
	*ret_len = p->len;
	*ret = (struct bpf_insn *)(void *)g_array_free(g_steal_pointer(&p), FALSE);
	return 0;
}

static int vr_devbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	g_autofree char *msg = NULL;

	if (level == LIBBPF_DEBUG)
		return 0;
	msg = g_strdup_vprintf(fmt, ap);
	log_debug("libbpf: %s", g_strchomp(msg));
	return 0;
}

/* Load the program for rules and attach it to the cgroup2 directory cgroup_fd. */
int vr_devbpf_attach(int cgroup_fd, const struct vr_dev_rule *rules, size_t n)
{
	g_autofree struct bpf_insn *insns = NULL;
	_cleanup_close_ int prog = -1;
	size_t len;
	int r;

	r = vr_devbpf_program(rules, n, &insns, &len);
	if (r < 0)
		return log_error_errno(r, "bad device rule");
	libbpf_set_print(vr_devbpf_print);
	prog = bpf_prog_load(BPF_PROG_TYPE_CGROUP_DEVICE, "veneer_devices", "GPL", insns, len,
			     NULL);
	if (prog < 0) {
		/* Again with the verifier's log, to say why. */
		g_autofree char *log = g_malloc0(65536);
		LIBBPF_OPTS(bpf_prog_load_opts, opts, .log_buf = log, .log_size = 65536,
			    .log_level = 1);
		int e = bpf_prog_load(BPF_PROG_TYPE_CGROUP_DEVICE, "veneer_devices", "GPL", insns,
				      len, &opts);

		if (e >= 0)
			close(e);
		return log_error_errno(prog, "the kernel refused the device program: %s",
				       log[0] ? g_strchomp(log) : "(no verifier log)");
	}
	/* Multi: an ancestor's program still applies too (the kernel ANDs them). */
	r = bpf_prog_attach(prog, cgroup_fd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI);
	if (r < 0)
		return log_error_errno(r, "failed to attach the device program to the cgroup");
	/* The attachment holds the program: our fd can go. */
	return 0;
}
