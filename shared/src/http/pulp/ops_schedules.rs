//! The operations on schedules: pulpcore's `task-schedules` list and read (its read-only
//! viewset), and Berth's own create, update and delete at the same paths. Routed and
//! documented with [`super::ops::OPS`].

use http::Method;

use super::ops::{op, Op, OpId};
use super::params::ParamType;
use super::params::READ;

use ParamType::{Fields as F, Integer as I, String as S, StringArray as A};

const SCHEDULES: &str = "/pulp/api/v3/task-schedules/";
const SCHEDULE: &str = "/pulp/api/v3/task-schedules/{id}/";
const HREF: Option<(&str, &str)> = Some(("task_schedule_href", SCHEDULE));

/// The fields the list orders by, as pulpcore declares them.
pub(super) const ORDER_SCHEDULES: &[&str] = &[
    "dispatch_interval",
    "name",
    "next_dispatch",
    "pk",
    "pulp_created",
    "pulp_id",
    "pulp_last_updated",
    "task_name",
];

/// pulpcore's `TaskScheduleFilter` (the parameters Berth applies).
const SCHEDULES_Q: &[(&str, ParamType)] = &[
    ("limit", I),
    ("offset", I),
    ("fields", F),
    ("exclude_fields", F),
    ("ordering", ParamType::Ordering(ORDER_SCHEDULES)),
    ("name", S),
    ("name__contains", S),
    ("task_name", S),
    ("task_name__contains", S),
    ("pulp_href__in", A),
    ("prn__in", A),
];

static OPS: &[Op] = &[
    op! { ScheduleList, "task_schedules_list", GET, SCHEDULES, None, SCHEDULES_Q, false, 200, "Task-Schedules" },
    op! { ScheduleCreate, "task_schedules_create", POST, SCHEDULES, None, &[], true, 201, "Task-Schedules" },
    op! { ScheduleRead, "task_schedules_read", GET, SCHEDULE, HREF, READ, false, 200, "Task-Schedules" },
    op! { SchedulePartialUpdate, "task_schedules_partial_update", PATCH, SCHEDULE, HREF, &[], true, 200, "Task-Schedules" },
    op! { ScheduleUpdate, "task_schedules_update", PUT, SCHEDULE, HREF, &[], true, 200, "Task-Schedules" },
    op! { ScheduleDelete, "task_schedules_delete", DELETE, SCHEDULE, HREF, &[], false, 204, "Task-Schedules" },
];

pub(super) fn ops() -> impl Iterator<Item = &'static Op> {
    OPS.iter()
}
