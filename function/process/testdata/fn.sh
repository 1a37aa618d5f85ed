#!/bin/sh
# A process function in POSIX sh used by the tests: its first argument
# selects a behaviour.
case "$1" in
exit-at-once)
	echo "cannot find my configuration" >&2
	exit 4
	;;
chatty)
	echo "hello, I am starting"
	;;
never-ready)
	sleep 60
	exit 0
	;;
esac
echo '{"ready":true}'
while IFS= read -r line; do
	id=$(printf '%s' "$line" | sed 's/.*"id":"\([0-9]*\)".*/\1/')
	case "$line" in
	*'"die"'*)
		echo "dying on request" >&2
		exit 7
		;;
	*'"fail"'*)
		printf '{"id":"%s","error":"no can do"}\n' "$id"
		;;
	*'"garbage"'*)
		echo "garbage"
		;;
	*'"hang"'*)
		sleep 60
		;;
	*)
		printf '{"id":"%s","output":{"pid":%s,"env":"%s"}}\n' "$id" "$$" "$GREETING"
		;;
	esac
done
