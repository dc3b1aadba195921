#!/usr/bin/env python3
"""Writes pulp_cli_operations.json: what real Pulp declares for the operations and
parameters that pulp-cli 0.41.1 sends for its `container`, `task`, `worker`, `status`,
`orphan`, `content`, `user`, `group` and `role` commands, and for every other operation
Berth serves.

Inputs (made with pulpcore 3.85.0 and pulp-container 2.26.0 installed from PyPI, pulpcore's
settings pointed at scratch folders, no database needed):
  api.json      `pulpcore-manager openapi --format openapi-json --file api.json`
  sources.json  operationId -> viewset, filterset and pagination class (file and class), from
                wrapping PulpAutoSchema.get_operation while PulpSchemaGenerator runs
  ops.rs …      Berth's operation tables (shared/src/http/pulp/ops.rs and ops_accounts.rs), for
                the operations it serves: every quoted operationId of Pulp's found in them

    python3 make_pulp_cli_operations.py api.json sources.json ../../src/http/pulp/ops.rs \
        ../../src/http/pulp/ops_accounts.rs > pulp_cli_operations.json

sources.json can be made by running, with the same settings (DJANGO_SETTINGS_MODULE=
pulpcore.app.settings, PULP_SECRET_KEY, PULP_MEDIA_ROOT, PULP_STATIC_ROOT, PULP_WORKING_DIRECTORY
set to scratch values), a script that sets sys.argv[1:] = ["openapi"] (pulpcore's settings skip
their database-key check for that command), calls django.setup(), replaces
pulpcore.openapi.PulpAutoSchema.get_operation by a wrapper that records, for each operation it
returns, type(self.view), self.view.filterset_class (or "<viewset>.filterset_fields" where
django-filter makes the filterset from those), self.view.pagination_class and self.view.action as
"<file relative to site-packages> <class>", then call_command("openapi", format="openapi-json",
file="api.json") and dumps the records with sort_keys=True.
"""
import json
import re
import sys

GENERIC_LIST = ["limit", "offset", "ordering", "fields", "exclude_fields"]
# A `--href prn:…` or `--repository prn:…` lookup finds the entity by `prn__in`
# (pulp_cli/generic.py href_callback, resource_lookup_option).
PRN = ["prn__in"]
CONTENT_FILTERS = ["pulp_label_select", "repository_version", "repository_version_added", "repository_version_removed"]
TASK_FILTERS = [
    "name", "name__contains", "logging_cid__contains", "state", "state__in", "task_group",
    "parent_task", "worker", "created_resources", "started_at__gte", "started_at__lte",
    "finished_at__gte", "finished_at__lte",
]

# operationId -> (query parameters pulp-cli may send, where in pulp-cli 0.41.1 they come from).
# Path parameters ({…_href}) are always sent and always checked.
CLI = {}


def use(op, params, why):
    CLI[op] = (params, why)


for kind, pfx in [("container", "repositories_container_container"), ("push", "repositories_container_container_push")]:
    use(f"{pfx}_list", GENERIC_LIST + ["pulp_label_select", "name"] + PRN,
        "pulpcore/cli/container/repository.py list_command(label_select_option); name/prn lookups of --name/--repository (pulp_cli/generic.py)")
    use(f"{pfx}_read", [], "show, and every lookup by href")
    use(f"{pfx}_tag", [], "repository tag (pulp_glue/container/context.py tag)")
    use(f"{pfx}_untag", [], "repository untag")
    use(f"{pfx}_versions_list", GENERIC_LIST + ["content__in", "number"],
        "version list --content (pulp_cli/generic.py content_in_option); version show --version N finds number=N")
    use(f"{pfx}_versions_read", [], "version show")
    use(f"{pfx}_versions_delete", [], "version destroy")
    use(f"{pfx}_versions_repair", [], "version repair (pulp_glue/common/context.py PulpRepositoryVersionContext.repair)")
P = "repositories_container_container"
use(f"{P}_create", [], "repository create (container only)")
use(f"{P}_partial_update", [], "repository update (PulpEntityContext.update)")
use(f"{P}_delete", [], "repository destroy (container only)")
use(f"{P}_sync", [], "repository sync")
use(f"{P}_add", [], "repository content add (PulpContainerRepositoryContext.modify)")
use(f"{P}_remove", [], "repository content remove")
use(f"{P}_copy_tags", [], "repository copy-tag")
use(f"{P}_copy_manifests", [], "repository copy-manifest")
use(f"{P}_push_remove_image", [], "repository -t push remove-image")
R = "remotes_container_container"
use(f"{R}_list", GENERIC_LIST + ["name", "name__contains", "name__icontains", "name__in", "pulp_label_select",
                                 "pulp_last_updated__gte", "pulp_last_updated__lte"] + PRN,
    "pulp_cli/generic.py remote_filter_options; --name/--remote lookups")
for a in ["read", "create", "partial_update", "delete"]:
    use(f"{R}_{a}", [], "remote show/create/update/destroy")
D = "distributions_container_container"
use(f"{D}_list", GENERIC_LIST + ["name", "name__contains", "name__icontains", "name__in", "pulp_label_select",
                                 "base_path", "base_path__icontains"] + PRN,
    "pulp_cli/generic.py distribution_filter_options; --name/--distribution lookups")
for a in ["read", "create", "partial_update", "delete"]:
    use(f"{D}_{a}", [], "distribution show/create/update/destroy")
N = "pulp_container_namespaces"
use(f"{N}_list", GENERIC_LIST + ["name"] + PRN, "pulpcore/cli/container/namespace.py list; --name/--namespace lookups")
for a in ["read", "create", "delete"]:
    use(f"{N}_{a}", [], "namespace show/create/destroy")
use("content_container_blobs_list", GENERIC_LIST + ["digest", "digest__in"] + CONTENT_FILTERS + PRN,
    "pulpcore/cli/container/content.py list_options (blob); show --digest")
use("content_container_manifests_list",
    GENERIC_LIST + ["media_type", "digest", "digest__in", "is_bootable", "is_flatpak"] + CONTENT_FILTERS + PRN,
    "pulpcore/cli/container/content.py list_options (manifest); show --digest")
use("content_container_tags_list", GENERIC_LIST + ["media_type", "name", "name__in", "digest"] + CONTENT_FILTERS + PRN,
    "pulpcore/cli/container/content.py list_options (tag); show --name --digest (pulp_glue/container/context.py sends digest as a list)")
for t in ["blobs", "manifests", "tags"]:
    use(f"content_container_{t}_read", [], "content show --href")
use("content_list", GENERIC_LIST + ["repository_version"],
    "pulpcore/cli/core/content.py list; repository content list --all-types (pulp_cli/generic.py)")
use("tasks_list", GENERIC_LIST + TASK_FILTERS + [
    "reserved_resources", "reserved_resources__in", "exclusive_resources", "exclusive_resources__in",
    "shared_resources", "shared_resources__in"] + PRN,
    "pulpcore/cli/core/task.py list, pulpcore/cli/core/generic.py task_filter; repository task list sends reserved_resources; task cancel --all sends state__in; task summary sends state")
use("tasks_read", [], "task show, and every wait for a task")
use("tasks_cancel", [], "task cancel")
use("tasks_delete", [], "task destroy")
use("tasks_purge", [], "task purge")
use("tasks_profile_artifacts", [], "task profile-artifact-urls")
use("workers_list", GENERIC_LIST + ["name", "name__contains", "name__icontains", "missing", "online"] + PRN,
    "pulpcore/cli/core/worker.py list; show --name")
use("workers_read", [], "worker show --href")
use("status_read", [], "status, and the plugin version checks")
use("orphans_cleanup_cleanup", [], "orphan cleanup")

# Role commands (pulp_cli/generic.py role_command: role list|add|remove|my-permissions, after the
# entity's lookup by --name or --href); they send no query parameter, only the entity's href.
ROLE_ACTIONS = {
    "_list_roles": "role list (pulp_glue/common/context.py PulpEntityContext.list_roles)",
    "_add_role": "role add --role --user --group (PulpEntityContext.add_role)",
    "_remove_role": "role remove --role --user --group (PulpEntityContext.remove_role)",
    "_my_permissions": "role my-permissions (PulpEntityContext.my_permissions)",
}
for holder, cmd in [(N, "container namespace"), (D, "container distribution"),
                    (P, "container repository (-t container)"), (R, "container remote"), ("groups", "group")]:
    for suffix, why in ROLE_ACTIONS.items():
        use(holder + suffix, [], f"{cmd} {why}")

# pulpcore/cli/core/user.py, group.py, role.py. Lookups (`--username`, `--name`, `--group`, the
# role-assignment remove's `--role`/`--object`/`--domain`) find the entity with the list operation
# and offset=0, limit=1 (pulp_glue/common/context.py find); `--href prn:…` finds it by prn__in.
# List commands always send fields and exclude_fields (empty lists), and the `multiple` options'
# lists (name__in, role__in) even when empty; ordering only when given.
use("users_list", GENERIC_LIST + ["username"] + PRN,
    "pulpcore/cli/core/user.py list; --username lookups of user show/update/destroy and role-assignment, "
    "group user remove --username (PulpGroupContext.remove_user); --href prn: lookups")
use("users_read", [], "user show --href, and every lookup by href")
use("users_create", [], "user create")
use("users_partial_update", [], "user update (PulpEntityContext.update)")
use("users_delete", [], "user destroy")
ROLE_ASSIGNMENT_FILTERS = ["role", "role__in", "role__contains", "role__icontains", "role__startswith",
                           "content_object", "domain"]
for holder, cmd in [("users", "user role-assignment"), ("groups", "group role-assignment")]:
    use(f"{holder}_roles_list", GENERIC_LIST + ROLE_ASSIGNMENT_FILTERS,
        f"{cmd} list --role --role-in --role-contains --role-icontains --role-startswith --object --domain; "
        f"{cmd} remove finds the assignment by role, content_object and domain")
    use(f"{holder}_roles_create", [], f"{cmd} add")
    use(f"{holder}_roles_delete", [], f"{cmd} remove")
use("groups_list", GENERIC_LIST + ["name"] + PRN,
    "pulpcore/cli/core/group.py list; --name/--group lookups of group show/destroy/role and its user and "
    "role-assignment subcommands; --href prn: lookups")
use("groups_read", [], "group show --href, and every lookup by href")
use("groups_create", [], "group create")
use("groups_delete", [], "group destroy")
use("groups_users_list", ["limit", "offset", "fields", "exclude_fields"],
    "group user list (Pulp declares no ordering here; pulp-cli sends it only when given)")
use("groups_users_create", [], "group user add --username")
use("groups_users_delete", [], "group user remove --username (PulpGroupContext.remove_user)")
use("roles_list", GENERIC_LIST + ["name", "name__contains", "name__icontains", "name__in", "locked",
                                  "name__startswith"] + PRN,
    "pulpcore/cli/core/role.py list (name_filter_options, --locked/--unlocked, --name-startswith); "
    "--name lookups of role show/update/destroy; --href prn: lookups")
use("roles_read", [], "role show --href, and every lookup by href")
use("roles_create", [], "role create")
use("roles_partial_update", [], "role update (PulpEntityContext.update)")
use("roles_delete", [], "role destroy")
use("domains_list", ["name", "offset", "limit"] + PRN,
    "role-assignment list/add/remove --domain NAME (pulp_cli/generic.py resource_option looks the domain up)")

# Commands of these groups that reach operations Berth does not serve, and why.
NOT_SERVED = {
    "_set_label": "label set/unset: Berth keeps no labels on entities",
    "_unset_label": "label set/unset: Berth keeps no labels on entities",
    f"{P}_push_list_roles": "role commands on push repositories: not served (roles on them are given with user/group role-assignment add --object)",
    f"{P}_push_add_role": "role commands on push repositories: not served (roles on them are given with user/group role-assignment add --object)",
    f"{P}_push_remove_role": "role commands on push repositories: not served (roles on them are given with user/group role-assignment add --object)",
    f"{P}_push_my_permissions": "role commands on push repositories: not served (roles on them are given with user/group role-assignment add --object)",
    "tasks_list_roles": "task role commands: not served (Berth assigns no roles on single tasks)",
    "tasks_add_role": "task role commands: not served (Berth assigns no roles on single tasks)",
    "tasks_remove_role": "task role commands: not served (Berth assigns no roles on single tasks)",
    "tasks_my_permissions": "task role commands: not served (Berth assigns no roles on single tasks)",
    "tasks_purge": "task purge: not served",
    "tasks_profile_artifacts": "task profile-artifact-urls: Berth records no task profiles",
    "roles_create": "role create/update/destroy: Berth's roles are pulp_container's and pulpcore's built-in (locked) ones",
    "roles_partial_update": "role create/update/destroy: Berth's roles are pulp_container's and pulpcore's built-in (locked) ones",
    "roles_delete": "role create/update/destroy: Berth's roles are pulp_container's and pulpcore's built-in (locked) ones",
    "domains_list": "--domain: Berth has no domains (Pulp's domains are not enabled)",
}
ROLE_LABEL_HOLDERS = [f"{P}", f"{P}_push", R, D, N, "content_container_blobs", "content_container_manifests",
                      "content_container_tags", "tasks"]


def norm_schema(s):
    out = {"type": s.get("type")}
    if "format" in s:
        out["format"] = s["format"]
    if "enum" in s:
        out["enum"] = sorted(s["enum"])
    if "items" in s:
        out["items"] = norm_schema(s["items"])
    return out


def norm_param(p):
    style = p.get("style", "form" if p["in"] in ("query", "cookie") else "simple")
    return {
        "in": p["in"],
        "required": bool(p.get("required", False)),
        "schema": norm_schema(p["schema"]),
        "style": style,
        "explode": bool(p.get("explode", style == "form")),
    }


def ops_of(doc):
    ops = {}
    for path, item in doc["paths"].items():
        for method, o in item.items():
            if isinstance(o, dict) and "operationId" in o:
                ops[o["operationId"]] = (method, path, o)
    return ops


def main():
    real = json.load(open(sys.argv[1]))
    sources = json.load(open(sys.argv[2]))
    real_ops = ops_of(real)
    berth = set()
    for ops_rs in sys.argv[3:]:
        berth |= set(re.findall(r'"([a-z][a-z0-9_]*)"', open(ops_rs).read())) & set(real_ops)
    for holder in ROLE_LABEL_HOLDERS:
        for suffix in ["_set_label", "_unset_label", "_list_roles", "_add_role", "_remove_role", "_my_permissions"]:
            if holder + suffix in real_ops and not (holder == "tasks" and "label" in suffix):
                CLI.setdefault(holder + suffix, ([], "role and label commands"))
    wanted = sorted(set(CLI) | (set(berth) & set(real_ops)))
    operations = {}
    for op_id in wanted:
        method, path, o = real_ops[op_id]
        src = sources.get(op_id, {})
        params = {}
        for p in o.get("parameters", []):
            if p["in"] in ("query", "path"):
                params[p["name"]] = norm_param(p)
        cli_params, why = CLI.get(op_id, (None, None))
        for name in cli_params or []:
            assert name in params, f"{op_id}: pulp-cli sends {name}, which Pulp does not declare"
        entry = {
            "method": method.upper(),
            "path": path,
            "source": {k: v for k, v in src.items() if v and k != "action"},
        }
        if cli_params is not None:
            entry["pulp_cli"] = {"sends": sorted(cli_params), "from": why}
            if op_id not in berth:
                reason = next((r for k, r in NOT_SERVED.items() if op_id.endswith(k) or op_id == k), None)
                assert reason, f"{op_id}: pulp-cli reaches it, Berth does not serve it, and NOT_SERVED says not why"
                entry["not_served"] = reason
        entry["parameters"] = dict(sorted(params.items()))
        body = o.get("requestBody")
        entry["request_body"] = None if body is None else {"required": bool(body.get("required", False))}
        entry["responses"] = sorted(o["responses"])
        operations[op_id] = entry
    out = {
        "about": [
            "What real Pulp declares in its OpenAPI document (/pulp/api/v3/docs/api.json) for the operations",
            "pulp-cli 0.41.1 uses in its container, task, worker, status, orphan, content, user, group and role",
            "commands (pulp_cli.sends: the query parameters it may send and where they come from), and for every other",
            "operation Berth serves. Generated by make_pulp_cli_operations.py from the document of pulpcore",
            f"{real['info']['x-pulp-app-versions']['core']} with pulp_container {real['info']['x-pulp-app-versions']['container']}",
            "(drf-spectacular 0.27.2 over the django-filter filtersets); source names the viewset, filterset and",
            "pagination class (file and class at that version) each operation's parameters come from.",
            "Parameters: query and path only (pulp-cli sends no headers); schema type, format, enum, items;",
            "style and explode with OpenAPI's defaults made explicit (form and exploded for query parameters).",
            "not_served: pulp-cli can reach it but Berth does not serve it, and why.",
        ],
        "versions": real["info"]["x-pulp-app-versions"],
        "operations": operations,
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


main()
