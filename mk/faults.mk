# Fault tests across modules: kill -9, broker restart, proxy outage, malformed
# floods, valgrind over a whole run, failure paths of every step. All
# against the real broker and the real vtpmd binary.
FAULT_TESTS = tests/integration/fault-kill.sh tests/integration/fault-broker.sh \
	tests/integration/fault-outage.sh tests/integration/fault-malformed.sh \
	tests/integration/fault-steps.sh tests/integration/fault-valgrind.sh
TESTS += $(FAULT_TESTS)
EXTRA_DIST += $(FAULT_TESTS) tests/tools/fault_burst.py tests/lib/fault.sh
