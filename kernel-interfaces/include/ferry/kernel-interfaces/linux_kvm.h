// Include <linux/kvm.h> through this header, never directly. Debian 12's uapi headers
// (6.1) declare flexible arrays with an empty struct that has size 1 in C++, which
// changes sizeof(kvm_cpuid2), kvm_msrs, kvm_msr_list and so the ioctl numbers derived
// from them (KVM_GET_SUPPORTED_CPUID would become 0xc00cae05 and fail with EINVAL).
// Upstream Linux later fixed the macro for C++ the same way.
#pragma once

#include <linux/stddef.h>

#ifdef __cplusplus
#undef __DECLARE_FLEX_ARRAY
// NOLINTNEXTLINE(bugprone-reserved-identifier): the kernel header's own macro, redefined for C++
#define __DECLARE_FLEX_ARRAY(TYPE, NAME) TYPE NAME[0]
#endif

#include <linux/kvm.h>

static_assert(sizeof(struct kvm_cpuid2) == 8, "include <linux/kvm.h> only via linux_kvm.h");
static_assert(sizeof(struct kvm_msrs) == 8, "include <linux/kvm.h> only via linux_kvm.h");
static_assert(sizeof(struct kvm_msr_list) == 4, "include <linux/kvm.h> only via linux_kvm.h");
