"""sessionraft_cluster.rolling: the order of a rolling restart — followers first in config
order, the leader last, decided again before each step."""

import unittest

from sessionraft_cluster import rolling


class NextNodeTest(unittest.TestCase):
    def test_followers_first_then_the_leader(self):
        self.assertEqual(rolling.next_node(["1", "2", "3"], [], "1"), "2")
        self.assertEqual(rolling.next_node(["1", "2", "3"], ["2"], "1"), "3")
        self.assertEqual(rolling.next_node(["1", "2", "3"], ["2", "3"], "1"), "1")

    def test_a_leader_already_restarted_is_not_picked_again(self):
        # the leader changed to node 2 after node 2 was restarted: 1 and 3 are left, in order
        self.assertEqual(rolling.next_node(["1", "2", "3"], ["2"], "2"), "1")

    def test_unknown_leader(self):
        self.assertEqual(rolling.next_node(["1", "2", "3"], ["1"], "9"), "2")


class RestartInOrderTest(unittest.TestCase):
    def run_cluster(self, ids, leader, elect_after=None):
        """A fake cluster: restarting the leader moves leadership to elect_after(leader, done)."""
        state = {"leader": leader}
        steps = []

        def restart(node_id, role, step):
            steps.append((step, node_id, role))
            if node_id == state["leader"] and elect_after:
                state["leader"] = elect_after(node_id, [s[1] for s in steps])

        rolling.restart_in_order(ids, lambda: state["leader"], restart)
        return steps

    def test_leader_last(self):
        self.assertEqual(self.run_cluster(["1", "2", "3"], "2"),
                         [("1/3", "1", "follower"), ("2/3", "3", "follower"), ("3/3", "2", "leader")])

    def test_every_node_once_when_the_leader_moves_meanwhile(self):
        # the leader moves from 1 to 3 before the second step (say, an election while 2 was down)
        state = {"calls": 0}

        def leader():
            state["calls"] += 1
            return "1" if state["calls"] == 1 else "3"

        steps = []
        rolling.restart_in_order(["1", "2", "3", "4"], leader,
                                 lambda i, role, step: steps.append((i, role)))
        self.assertEqual(steps, [("2", "follower"), ("1", "follower"), ("4", "follower"), ("3", "leader")])

    def test_a_single_node_is_the_leader(self):
        self.assertEqual(self.run_cluster(["1"], "1"), [("1/1", "1", "leader")])


if __name__ == "__main__":
    unittest.main()
