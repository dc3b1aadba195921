#!/usr/bin/env python3
"""The CloudWatch dashboard and alarms of template.yaml against infra/dashboard.json and the
metrics Berth emits: the template's DashboardBody is infra/dashboard.json exactly; every
`${…}` in it names a resource of the template (or one of its attributes, or the region); and
every metric of the `Berth` namespace the dashboard and the alarms name is one the functions
write (shared/src/observe/emf.rs, the embedded metric format documents).

    dashboard.py   (from the repository's root; ends with `N passed, N failed`)
"""
import json
import re
import sys

fails = passed = 0


def check(name, cond, detail=""):
    global fails, passed
    if cond:
        passed += 1
        print(f"OK   {name}")
    else:
        fails += 1
        print(f"FAIL {name}{': ' + detail if detail else ''}")


template = open("template.yaml").read()
source = open("infra/dashboard.json").read().rstrip("\n")
m = re.search(r"\n  Dashboard:\n[\s\S]*?DashboardBody: !Sub \|\n((?:        .*\n|\n)+)", template)
check("the template has the dashboard", m is not None)
body = "\n".join(line[8:] for line in m.group(1).rstrip("\n").split("\n")) if m else ""
check("its body is infra/dashboard.json exactly", body == source)

resources = set(re.findall(r"^  ([A-Za-z0-9]+):\n    Type: ", template, re.M))
refs = set(re.findall(r"\$\{([^}]+)\}", source))
unknown = sorted(r for r in refs if r != "AWS::Region" and r.split(".")[0] not in resources)
check("every ${…} in it names a resource of the template", not unknown, str(unknown))
filled = re.sub(r"\$\{[^}]+\}", "x", source)
try:
    dash = json.loads(filled)
    check("it is a dashboard (JSON with widgets)", len(dash["widgets"]) > 0)
except (ValueError, KeyError) as e:
    dash = {"widgets": []}
    check("it is a dashboard (JSON with widgets)", False, str(e))

emf = open("shared/src/observe/emf.rs").read()
emitted = set(re.findall(r'\("([A-Za-z0-9]+)", "(?:Count|Milliseconds|Seconds|Bytes)"\)', emf))
check("the functions emit metrics in the Berth namespace", 'NAMESPACE: &str = "Berth"' in emf and emitted, str(emitted))
named = {w[1] for x in dash["widgets"] for w in x["properties"].get("metrics", []) if w[0] == "Berth"}
named |= set(re.findall(r"Namespace: Berth\n      MetricName: (\w+)", template))
missing = sorted(named - emitted)
check(f"the {len(named)} Berth metrics the dashboard and alarms name are emitted", named and not missing, str(missing))
alarms = re.findall(r"\n  (\w+):\n    Type: AWS::CloudWatch::Alarm", template)
check(f"{len(alarms)} alarms notify the Alarms topic", alarms and template.count("AlarmActions: [!Ref Alarms]") == len(alarms))

print(f"{passed} passed, {fails} failed")
sys.exit(1 if fails else 0)
