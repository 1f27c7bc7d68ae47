// vmm_bench: prints (does not assert) two VMM figures measured in the same run as their
// baselines, with the ratio:
//  1. boot to first serial line of the test guest: `ferry run` vs QEMU (-enable-kvm,
//     multiboot) booting the same binary, median of N runs each;
//  2. one vCPU exit to userspace (an `out` to an unclaimed port, handled and re-entered)
//     vs a KVM_CHECK_EXTENSION ioctl round trip on the same host.
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "ferry/kernel-interfaces/kvm.h"

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Spawns argv, returns ms until `needle` shows up on its stdout (or -1), then kills it.
double ms_to_line(std::vector<std::string> argv, const std::string& needle) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return -1;
  }
  const auto start = Clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    int null = open("/dev/null", O_RDWR);
    dup2(null, STDERR_FILENO);
    dup2(null, STDIN_FILENO);
    std::vector<char*> args;
    for (auto& a : argv) {
      args.push_back(a.data());
    }
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  double ms = -1;
  while (Clock::now() - start < std::chrono::seconds(30)) {
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) {
      continue;
    }
    char buf[4096];
    ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n <= 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
    if (out.find(needle) != std::string::npos) {
      ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      break;
    }
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  close(fds[0]);
  return ms;
}

void boot_time(int runs) {
  std::vector<double> ferry, qemu;
  const std::string guest = FERRY_TEST_GUEST;
  for (int i = 0; i < runs; ++i) {
    ferry.push_back(ms_to_line(
        {FERRY_BINARY, "run", "--kernel", guest, "--mem", "128M", "--cmdline", "mode=hello"},
        "FERRY-GUEST ready"));
    qemu.push_back(ms_to_line({"qemu-system-x86_64",
                               "-enable-kvm",
                               "-cpu",
                               "host,-arch-capabilities",
                               "-m",
                               "128",
                               "-nographic",
                               "-no-reboot",
                               "-display",
                               "none",
                               "-monitor",
                               "none",
                               "-serial",
                               "stdio",
                               "-kernel",
                               guest,
                               "-append",
                               "mode=hello",
                               "-device",
                               "isa-debug-exit,iobase=0xf4,iosize=0x04"},
                              "FERRY-GUEST ready"));
  }
  const double f = median(ferry), q = median(qemu);
  fmt::print("boot to first serial line (median of {}): ferry {:.1f} ms", runs, f);
  if (q > 0) {
    fmt::print(", qemu {:.1f} ms, ferry/qemu = {:.2f}\n", q, f / q);
  } else {
    fmt::print(", qemu unavailable (install qemu-system-x86 for the baseline)\n");
  }
}

// Real-mode guest: `out 0x80, al` in a loop of `count` iterations, then `hlt`.
void exit_round_trip(uint32_t count) {
  auto kvm = ferry::kernel::KvmSystem::open();
  if (!kvm) {
    fmt::print("vCPU exit round trip: skipped ({})\n", kvm.error().message());
    return;
  }
  auto vm = kvm->create_vm();
  auto mem = ferry::kernel::Mapping::anonymous_shared(1 << 20, false);
  if (!vm || !mem) {
    fmt::print("vCPU exit round trip: setup failed\n");
    return;
  }
  // mov ecx, count; loop: out 0x80, al; dec ecx; jnz loop; hlt
  const uint8_t code[] = {0x66,
                          0xb9,
                          uint8_t(count),
                          uint8_t(count >> 8),
                          uint8_t(count >> 16),
                          uint8_t(count >> 24),
                          0xe6,
                          0x80,
                          0x66,
                          0x49,
                          0x75,
                          0xfa,
                          0xf4};
  std::memcpy(mem->data() + 0x1000, code, sizeof(code));
  kvm_userspace_memory_region region{0, 0, 0, 1 << 20, reinterpret_cast<uint64_t>(mem->data())};
  (void)vm->set_user_memory_region(region);
  auto vcpu = vm->create_vcpu(0, *kvm->get_vcpu_mmap_size());
  if (!vcpu) {
    fmt::print("vCPU exit round trip: {}\n", vcpu.error().message());
    return;
  }
  auto sregs = vcpu->get_sregs();
  sregs->cs.base = 0;
  sregs->cs.selector = 0;
  (void)vcpu->set_sregs(*sregs);
  kvm_regs regs{};
  regs.rip = 0x1000;
  regs.rflags = 2;
  (void)vcpu->set_regs(regs);
  uint64_t exits = 0;
  const auto start = Clock::now();
  while (vcpu->run()) {
    if (vcpu->run_state()->exit_reason != KVM_EXIT_IO) {
      break;
    }
    ++exits;
  }
  const double guest_us = std::chrono::duration<double, std::micro>(Clock::now() - start).count() /
                          std::max<uint64_t>(exits, 1);
  const auto b0 = Clock::now();
  for (uint32_t i = 0; i < count; ++i) {
    (void)kvm->check_extension(KVM_CAP_USER_MEMORY);
  }
  const double ioctl_us =
      std::chrono::duration<double, std::micro>(Clock::now() - b0).count() / count;
  fmt::print(
      "vCPU exit round trip ({} port exits): {:.2f} us per exit; baseline ioctl {:.3f} us; "
      "ratio {:.0f}x\n",
      exits, guest_us, ioctl_us, guest_us / ioctl_us);
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::atoi(argv[1]) : 5;
  boot_time(runs);
  exit_round_trip(20000);
  return 0;
}
