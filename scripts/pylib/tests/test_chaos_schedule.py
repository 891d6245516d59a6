"""sessionraft_chaos.schedule: the bash script's generator, seeded determinism, every scenario's
faults within the duration, hold times and gaps in range."""

import unittest

from sessionraft_chaos.schedule import (ESTIMATES, FAULTS, GAP_RANGE, HOLD_RANGES, MIXED_POOL,
                                        SCENARIOS, SKEWS, Lcg, Schedule, candidates, fits, plan)


def take(seed, scenario, n, have_faketime=True):
    it = Schedule(seed, scenario, have_faketime).faults()
    return [next(it) for _ in range(n)]


class LcgTest(unittest.TestCase):
    def test_same_numbers_as_the_bash_script(self):
        # printed by the bash script's rand() (seed, 12 draws of `rand 0 999`)
        expected = {
            0: [388, 21, 542, 805, 826, 310, 990, 415, 577, 571, 491, 22],
            7: [425, 19, 490, 296, 310, 64, 575, 500, 104, 180, 837, 635],
            20261126: [784, 45, 934, 287, 786, 139, 609, 102, 108, 641, 756, 157],
            999999: [322, 615, 271, 284, 342, 179, 42, 400, 887, 862, 944, 188],
        }
        for seed, want in expected.items():
            g = Lcg(seed)
            self.assertEqual([g.rand(0, 999) for _ in range(12)], want, seed)

    def test_range_is_inclusive(self):
        g = Lcg(1)
        seen = {g.rand(2, 4) for _ in range(500)}
        self.assertEqual(seen, {2, 3, 4})


class ScheduleTest(unittest.TestCase):
    def test_mixed_seed_7_as_the_bash_script_drew_it(self):
        # the bash script's draw order, replayed in bash for seed 7 (nominal path)
        s = Schedule(7, "mixed")
        self.assertEqual(s.disk_node, 1)
        got = [(f.name, f.node, f.follower, f.hold, f.gap, f.skew) for f in take(7, "mixed", 8)]
        self.assertEqual(got, [
            ("kill-random", 2, None, 2, 3, None),
            ("pause", 1, None, 7, 2, None),
            ("kill-random", 2, None, 4, 2, None),
            ("partition-minority", None, 1, 4, 2, None),
            ("clock-skew", 2, None, 11, 4, "-90s"),
            ("partition-minority", None, 1, 6, 2, None),
            ("partition-leader", None, None, 5, 2, None),
            ("disk-full", None, None, 4, 3, None),
        ])

    def test_mixed_ci_seed_unchanged_by_the_targeted_pauses(self):
        # drawn before pause-leader and pause-follower existed (tests/it/solo/chaos.rs's seed)
        s = Schedule(20261126, "mixed")
        self.assertEqual(s.disk_node, 2)
        got = [(f.name, f.node, f.leader, f.follower, f.hold, f.gap)
               for f in take(20261126, "mixed", 10)]
        self.assertEqual(got, [
            ("wipe-and-rejoin", None, False, 0, 2, 3),
            ("disk-full", None, False, None, 5, 2),
            ("pause", 2, False, None, 5, 4),
            ("partition-leader", None, False, None, 7, 2),
            ("partition-minority", None, False, 1, 4, 3),
            ("rolling-restart", None, False, None, 0, 2),
            ("disk-full", None, False, None, 7, 4),
            ("rolling-restart", None, False, None, 0, 3),
            ("wipe-and-rejoin", None, False, 1, 3, 2),
            ("partition-minority", None, False, 1, 4, 4),
        ])

    def test_mixed_pool_is_the_bash_scripts_faults_in_its_order(self):
        self.assertEqual(MIXED_POOL, ("kill-leader", "kill-random", "pause", "partition-leader",
                                      "partition-minority", "rolling-restart", "clock-skew",
                                      "disk-full", "wipe-and-rejoin"))
        self.assertEqual(candidates(True), list(MIXED_POOL))
        self.assertEqual(set(FAULTS) - set(MIXED_POOL), {"pause-leader", "pause-follower"})

    def test_targeted_pauses(self):
        leader = take(5, "pause-leader", 30)
        self.assertTrue(all(f.leader and f.node is None and f.follower is None for f in leader))
        follower = take(5, "pause-follower", 30)
        self.assertTrue(all(not f.leader and f.node is None for f in follower))
        self.assertEqual({f.follower for f in follower}, {0, 1})
        # the draws: pause-leader the hold and the gap; pause-follower the follower first
        g = Lcg(5)
        self.assertEqual((leader[0].hold, leader[0].gap), (g.rand(3, 7), g.rand(*GAP_RANGE)))
        g = Lcg(5)
        self.assertEqual((follower[0].follower, follower[0].hold, follower[0].gap),
                         (g.rand(0, 1), g.rand(3, 7), g.rand(*GAP_RANGE)))

    def test_same_seed_same_schedule_other_seed_other_schedule(self):
        for scenario in SCENARIOS:
            self.assertEqual(take(42, scenario, 20), take(42, scenario, 20), scenario)
            self.assertEqual(plan(42, scenario, 120), plan(42, scenario, 120), scenario)
        self.assertNotEqual(take(1, "mixed", 20), take(2, "mixed", 20))

    def test_single_scenarios_repeat_their_fault(self):
        for scenario in FAULTS:
            self.assertEqual({f.name for f in take(3, scenario, 10)}, {scenario})

    def test_mixed_never_repeats_a_fault_and_uses_them_all(self):
        faults = take(11, "mixed", 300)
        for a, b in zip(faults, faults[1:]):
            self.assertNotEqual(a.name, b.name)
        self.assertEqual({f.name for f in faults}, set(MIXED_POOL))

    def test_mixed_without_libfaketime_leaves_clock_skew_out(self):
        self.assertNotIn("clock-skew", candidates(False))
        names = {f.name for f in take(5, "mixed", 300, have_faketime=False)}
        self.assertNotIn("clock-skew", names)
        self.assertEqual(len(names), len(MIXED_POOL) - 1)

    def test_disk_node_only_where_a_tmpfs_is_needed(self):
        for scenario in SCENARIOS:
            node = Schedule(9, scenario).disk_node
            if scenario in ("disk-full", "mixed"):
                self.assertEqual(node, Lcg(9).rand(1, 3))
            else:
                self.assertIsNone(node)

    def test_parameters_in_range(self):
        for seed in range(30):
            for scenario in SCENARIOS:
                for f in take(seed, scenario, 15):
                    rng = HOLD_RANGES[f.name]
                    if rng is None:
                        self.assertEqual(f.hold, 0)
                    else:
                        self.assertGreaterEqual(f.hold, rng[0], f)
                        self.assertLessEqual(f.hold, rng[1], f)
                    self.assertTrue(GAP_RANGE[0] <= f.gap <= GAP_RANGE[1], f)
                    if f.name in ("kill-random", "clock-skew") or (f.name == "pause"
                                                                  and not f.leader):
                        self.assertIn(f.node, (1, 2, 3), f)
                    if f.name in ("partition-minority", "wipe-and-rejoin", "pause-follower"):
                        self.assertIn(f.follower, (0, 1), f)
                    if f.name == "clock-skew":
                        self.assertIn(f.skew, SKEWS)

    def test_every_scenario_runs_at_least_one_fault_within_the_duration(self):
        for seed in range(20):
            for scenario in SCENARIOS:
                for duration in (5, 20, 40, 75, 120):
                    p = plan(seed, scenario, duration)
                    self.assertGreaterEqual(len(p), 1, (seed, scenario, duration))
                    self.assertEqual(p[0][0], 3)  # after the warmup
                    for i, (start, f) in enumerate(p):
                        self.assertLess(start, duration)
                        if i > 0:  # the first always runs; the others only if they fit
                            self.assertLessEqual(start + ESTIMATES[f.name], duration,
                                                 (seed, scenario, duration, p))

    def test_a_longer_run_has_more_faults(self):
        self.assertGreater(len(plan(7, "mixed", 120)), len(plan(7, "mixed", 30)))
        self.assertGreaterEqual(len(plan(7, "kill-leader", 75)), 4)

    def test_fits(self):
        self.assertTrue(fits(0, 10_000, "clock-skew", 5_000))  # the first always
        self.assertTrue(fits(1, 10_000, "kill-leader", 18_000))
        self.assertFalse(fits(1, 10_001, "kill-leader", 18_000))

    def test_unknown_scenario(self):
        with self.assertRaises(ValueError):
            Schedule(1, "nope")


if __name__ == "__main__":
    unittest.main()
