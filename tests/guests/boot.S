/* Boot code of Ferry's test guest: multiboot v1 header (a.out kludge) + Ferry 64-bit header,
 * the 32-bit multiboot entry (enables long mode), the common 64-bit entry that every vCPU
 * runs, a static GDT / IDT / per-vCPU TSS (zeroed I/O bitmap: ring-3 port I/O, since this
 * host's KVM-PVM drops RFLAGS.IOPL) and static identity page tables with the user bit.
 * Ring-0 work is kept to a few dozen instructions per vCPU: KVM-PVM emulates ring 0.
 * Layout and contract: docs/test-guest.md. */

#define BOOT_BASE 0x100000
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS ((1 << 1) | (1 << 16)) /* memory info, a.out kludge addresses */

#define KCODE 0x08
#define KDATA 0x10
#define UDATA 0x18
#define UCODE 0x20
#define TSS_SEL0 0x28
#define KCODE32 (TSS_SEL0 + 16 * MAX_CPUS) /* flat 32-bit code, for the SIPI trampoline */
#define TRAMP_BASE 0x8000                  /* SIPI vector 0x08 */

#define MAX_CPUS 8
#define KSTACK_SIZE 16384
#define IST_SIZE 8192
#define USTACK_SIZE 65536
#define TSS_LIMIT (0x68 + 0x2000) /* header + 64 Ki-port bitmap; byte 0x2068 = 0xff */
#define TSS_STRIDE 0x2080

/* Address of a .boot symbol as an assemble-time constant (the section is linked at 1 MiB). */
#define BOOTADDR(sym) (BOOT_BASE + ((sym) - _start))

    .section .boot, "awx"
    .globl _start
_start:
mb_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
    .long mb_header   /* header_addr */
    .long _start      /* load_addr */
    .long _edata_load /* load_end_addr */
    .long _end        /* bss_end_addr */
    .long entry32     /* entry_addr */

    .balign 8
    .globl ferry_header
ferry_header:
    .ascii "FERRY64\0" /* u64 0x0034365952524546 */
    .quad entry64
    .quad _start
    .quad _edata_load
    .quad _end

/* ---- 32-bit multiboot entry: EAX = 0x2BADB002, EBX = multiboot info, paging off ---- */
    .code32
    .globl entry32
entry32:
    cli
    mov %eax, %edi
    mov %ebx, %esi
    mov %cr4, %eax
    or $0x20, %eax /* PAE */
    mov %eax, %cr4
    mov $pml4, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx /* EFER.LME */
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax /* PG | PE */
    mov %eax, %cr0
    lgdt gdt_ptr
    ljmp $KCODE, $entry64_from32

    .code64
entry64_from32:
    mov %edi, %eax
    mov %esi, %ebx
    xor %esi, %esi /* no vCPU-count hint on this path */
    /* fall through */

/* ---- 64-bit entry: every vCPU; EAX = magic, EBX = multiboot info (BSP),
 *      RSI = number of vCPUs (Ferry's loader; 0 = unknown) ---- */
    .globl entry64
entry64:
    cli
    mov %eax, %r14d
    mov %ebx, %r15d
    mov %rsi, %r12
    mov $1, %eax
    xor %ecx, %ecx
    cpuid
    shr $24, %ebx /* initial APIC ID */
    mov %ebx, %r13d
    cmp $MAX_CPUS, %ebx
    jae park
    mov %cr4, %rax
    and $~((1 << 2) | (1 << 17) | (1 << 20) | (1 << 21)), %rax /* TSD, PCIDE, SMEP, SMAP */
    or $0x20, %rax
    mov %rax, %cr4
    mov $pml4, %eax
    mov %rax, %cr3
    lgdt gdt_ptr
    mov $KDATA, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    lea 1(%r13), %rax
    shl $14, %rax /* KSTACK_SIZE */
    add $kstacks, %rax
    mov %rax, %rsp
    pushq $KCODE
    pushq $1f
    lretq
1:
    mov %r13d, %eax
    shl $4, %eax
    add $TSS_SEL0, %eax
    ltr %ax
    lidt idt_ptr
    mov %r13d, %edi
    mov %r15d, %esi
    mov %r14d, %edx
    call ring0_cpu_setup
    /* iretq to ring 3 on this vCPU's user stack (top - 8: ABI alignment at entry) */
    lea 1(%r13), %rax
    shl $16, %rax /* USTACK_SIZE */
    add $ustacks - 8, %rax
    pushq $(UDATA | 3)
    pushq %rax
    pushq $0x2 /* IF=0, IOPL=0: port I/O is allowed by the TSS bitmap */
    pushq $(UCODE | 3)
    pushq $guest_main
    mov %r13d, %edi
    mov %r15d, %esi
    mov %r14d, %edx
    mov %r12, %rcx
    iretq

park: /* APIC ID beyond MAX_CPUS: this vCPU takes no part */
    cli
    hlt
    jmp park

/* ---- SIPI trampoline: copied to TRAMP_BASE by the BSP when it has to start the APs
 *      itself (multiboot path); real mode -> protected mode -> entry32 ---- */
#define TRAMP(sym) (TRAMP_BASE + ((sym) - ap_tramp_start))
    .code16
    .globl ap_tramp_start
ap_tramp_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    lgdtl TRAMP(tramp_gdtr)
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $KCODE32, $TRAMP(tramp32)
    .code32
tramp32:
    mov $KDATA, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov $entry32, %eax
    jmp *%eax
    .balign 8
tramp_gdtr:
    .word gdt_end - gdt - 1
    .long gdt
    .globl ap_tramp_end
ap_tramp_end:
    .code64

/* ---- exception stubs: push (error code, vector), then the common path ---- */
.macro EXC_NOERR n
exc_\n:
    pushq $0
    pushq $\n
    jmp exc_common
.endm
.macro EXC_ERR n
exc_\n:
    pushq $\n
    jmp exc_common
.endm

    EXC_NOERR 0
    EXC_NOERR 1
    EXC_NOERR 2
    EXC_NOERR 3
    EXC_NOERR 4
    EXC_NOERR 5
    EXC_NOERR 6
    EXC_NOERR 7
    EXC_ERR 8
    EXC_NOERR 9
    EXC_ERR 10
    EXC_ERR 11
    EXC_ERR 12
/* #GP doubles as the idle call: a ring-3 `hlt` (privileged, so it raises #GP(0)) is
 * carried out here. EAX = 0: `sti; hlt` until the next interrupt (the LAPIC timer ring 3
 * armed), then resume after the hlt. EAX != 0: park for good. Neither SYSCALL nor
 * `int n` reach guest ring 0 on KVM-PVM; exceptions do. Any other #GP is reported. */
exc_13:
    testb $3, 16(%rsp) /* CS of the faulting code: err, rip, cs, ... on the stack */
    jz 9f
    cmpq $0, (%rsp)
    jne 9f
    push %rax
    mov 16(%rsp), %rax
    cmpb $0xf4, (%rax) /* hlt */
    pop %rax
    jne 9f
    addq $1, 8(%rsp)
    test %eax, %eax
    jnz 8f
    sti
    hlt
    cli
    add $8, %rsp /* error code */
    iretq
8:
    cli
    hlt
    jmp 8b
9:
    pushq $13
    jmp exc_common
    EXC_ERR 14
    EXC_NOERR 15
    EXC_NOERR 16
    EXC_ERR 17
    EXC_NOERR 18
    EXC_NOERR 19
    EXC_NOERR 20
    EXC_ERR 21
    EXC_NOERR 22
    EXC_NOERR 23
    EXC_NOERR 24
    EXC_NOERR 25
    EXC_NOERR 26
    EXC_NOERR 27
    EXC_NOERR 28
    EXC_ERR 29
    EXC_ERR 30
    EXC_NOERR 31

exc_common:
    push %rax
    push %rcx
    push %rdx
    push %rbx
    push %rbp
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    and $-16, %rsp
    call ring0_exception
2:
    cli
    hlt
    jmp 2b

timer_isr:
    push %rax
    mov $0xfee000b0, %eax /* LAPIC EOI */
    movl $0, (%rax)
    pop %rax
    iretq

spurious_isr: /* no EOI for the spurious vector */
    iretq

/* ---- descriptor tables ---- */
    .balign 16
gdt:
    .quad 0
    .quad 0x00af9a000000ffff /* 0x08 ring-0 code, 64-bit */
    .quad 0x00cf92000000ffff /* 0x10 ring-0 data */
    .quad 0x00cff2000000ffff /* 0x18 ring-3 data */
    .quad 0x00affa000000ffff /* 0x20 ring-3 code, 64-bit */
    .set cpu, 0
    .rept MAX_CPUS /* 0x28 + 16*i: 64-bit available TSS of vCPU i */
    .word TSS_LIMIT & 0xffff
    .word BOOTADDR(tss_array + cpu * TSS_STRIDE) & 0xffff
    .byte (BOOTADDR(tss_array + cpu * TSS_STRIDE) >> 16) & 0xff
    .byte 0x89
    .byte (TSS_LIMIT >> 16) & 0xf
    .byte (BOOTADDR(tss_array + cpu * TSS_STRIDE) >> 24) & 0xff
    .long 0
    .long 0
    .set cpu, cpu + 1
    .endr
    .quad 0x00cf9a000000ffff /* KCODE32: flat 32-bit ring-0 code */
gdt_end:

    .balign 8
    .word 0, 0, 0
gdt_ptr:
    .word gdt_end - gdt - 1
    .quad gdt

.macro GATE_TO target, ist
    .word BOOTADDR(\target) & 0xffff
    .word KCODE
    .byte \ist
    .byte 0x8e /* present, DPL 0, interrupt gate */
    .word (BOOTADDR(\target) >> 16) & 0xffff
    .long 0
    .long 0
.endm
.macro GATE n, ist
    GATE_TO exc_\n, \ist
.endm

    .balign 16
idt:
    GATE 0, 0
    GATE 1, 0
    GATE 2, 1
    GATE 3, 0
    GATE 4, 0
    GATE 5, 0
    GATE 6, 0
    GATE 7, 0
    GATE 8, 1
    GATE 9, 0
    GATE 10, 0
    GATE 11, 0
    GATE 12, 0
    GATE 13, 0
    GATE 14, 0
    GATE 15, 0
    GATE 16, 0
    GATE 17, 0
    GATE 18, 1
    GATE 19, 0
    GATE 20, 0
    GATE 21, 0
    GATE 22, 0
    GATE 23, 0
    GATE 24, 0
    GATE 25, 0
    GATE 26, 0
    GATE 27, 0
    GATE 28, 0
    GATE 29, 0
    GATE 30, 0
    GATE 31, 0
    GATE_TO timer_isr, 0      /* 32: LAPIC timer (guest_sleep) */
    GATE_TO spurious_isr, 0   /* 33: LAPIC spurious vector */
    /* Other vectors are not present: a stray interrupt raises #NP (vector 11) with
     * error code vector*8+2, which the handler prints. */
    .fill (256 - 34) * 16, 1, 0
idt_end:

    .balign 8
    .word 0, 0, 0
idt_ptr:
    .word idt_end - idt - 1
    .quad idt

/* Per-vCPU TSS: RSP0 = kernel stack, IST1 = double-fault stack, all ports allowed. */
    .balign 64
tss_array:
    .set cpu, 0
    .rept MAX_CPUS
    .long 0
    .quad kstacks + (cpu + 1) * KSTACK_SIZE /* rsp0 */
    .quad 0, 0                              /* rsp1, rsp2 */
    .quad 0
    .quad iststacks + (cpu + 1) * IST_SIZE  /* ist1 */
    .quad 0, 0, 0, 0, 0, 0                  /* ist2..7 */
    .quad 0
    .word 0
    .word 0x68                              /* iomap_base */
    .fill 0x2000, 1, 0                      /* I/O permission bitmap: every port allowed */
    .byte 0xff
    .fill TSS_STRIDE - (TSS_LIMIT + 1), 1, 0 /* exactly TSS_STRIDE apart (the GDT says so) */
    .set cpu, cpu + 1
    .endr
    .if . - tss_array != TSS_STRIDE * MAX_CPUS
    .error "TSS array size does not match TSS_STRIDE"
    .endif

/* ---- identity page tables, 0-4 GiB in 2 MiB pages, user-accessible ---- */
    .section .data.pagetables, "aw"
    .balign 4096
    .globl pml4
pml4:
    .quad pdpt + 0x7
    .fill 511, 8, 0
pdpt:
    .quad pd_tables + 0x0000 + 0x7
    .quad pd_tables + 0x1000 + 0x7
    .quad pd_tables + 0x2000 + 0x7
    .quad pd_tables + 0x3000 + 0x7
    .fill 508, 8, 0
pd_tables:
    .set pg, 0
    .rept 1536 /* 0-3 GiB: RAM, write-back */
    .quad (pg << 21) | 0x87 /* P | RW | US | PS */
    .set pg, pg + 1
    .endr
    .rept 512 /* 3-4 GiB: MMIO hole, uncached */
    .quad (pg << 21) | 0x9f /* P | RW | US | PWT | PCD | PS */
    .set pg, pg + 1
    .endr

    .section .bss
    .balign 4096
    .globl kstacks
kstacks:
    .skip KSTACK_SIZE * MAX_CPUS
iststacks:
    .skip IST_SIZE * MAX_CPUS
    .globl ustacks
ustacks:
    .skip USTACK_SIZE * MAX_CPUS

    .section .note.GNU-stack, "", @progbits
