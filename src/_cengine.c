/* betterall._cengine: the native engine of betterall.
 *
 * Design in brief (docs/design.md has the long version):
 *
 *   Graph    one all()/all_settled()/flow() call, and the awaitable it
 *            returns; owns the nodes, the ready queue and the outcome.
 *   Node     one graph task: a lightweight task that the engine steps
 *            itself, and asyncio's current task while its code runs.
 *   Context  `self` inside a task: the lazy proxy to the siblings.
 *   Sibling  `self.user`: one wait on a sibling; parks the waiting node in
 *            the engine, or acts as an asyncio Future for foreign code.
 *
 * The event loop is used only for waits on something outside the graph
 * (a Future or Task yielded by a task, a bare yield) and for the caller's
 * single wait on the whole graph; waits between siblings go through the
 * ready queue in C.
 *
 * The module uses multi-phase initialisation, keeps everything it caches
 * in its module state and defines only heap types, so it can be imported
 * more than once (and in several interpreters) without shared state.
 */
#include "state.h"
#include "node.h"
#include "sibling.h"
#include "context.h"
#include "graph.h"

static PyObject *
ba_all(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return graph_entry(module, MODE_ALL, args, nargs, kwnames);
}

static PyObject *
ba_all_settled(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return graph_entry(module, MODE_SETTLED, args, nargs, kwnames);
}

static PyObject *
ba_flow(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return graph_entry(module, MODE_FLOW, args, nargs, kwnames);
}

PyDoc_STRVAR(all_doc,
"all(tasks, *, debug=False, timeout=None)\n--\n\n"
"Run every task at once; await the result for their results, in the\n"
"mapping's order.  The first error raised by a task propagates unchanged,\n"
"after every other task still running has been cancelled and has finished.");

PyDoc_STRVAR(all_settled_doc,
"all_settled(tasks, *, debug=False, timeout=None)\n--\n\n"
"Run every task at once; await the result for a Settled per task.  Never\n"
"raises for a task's error, and does not cancel the siblings of a task\n"
"that fails.");

PyDoc_STRVAR(flow_doc,
"flow(tasks, *, debug=False, timeout=None)\n--\n\n"
"Run every task at once until one calls self._end(value); await the\n"
"result for that value (None if no task ended the flow).");

/* _live_objects(): in a debug build, how many engine objects of each type
 * are alive; None in a release build.  The test suite checks after every
 * test that none were left behind. */
static PyObject *
ba_live_objects(PyObject *module, PyObject *Py_UNUSED(ignored))
{
#ifdef BA_DEBUG
    mod_state *st = PyModule_GetState(module);
    return Py_BuildValue("{snsnsnsn}", "Graph", st->live[LIVE_GRAPH], "Node",
                         st->live[LIVE_NODE], "Context", st->live[LIVE_CONTEXT],
                         "Sibling", st->live[LIVE_SIBLING]);
#else
    (void)module;
    Py_RETURN_NONE;
#endif
}

/* _current_task_swap(): how nodes become asyncio's current task here:
 * "table" (one store into asyncio's dict, 3.11-3.13) or "calls" (asyncio's
 * own _swap_current_task, or _enter_task/_leave_task on 3.11). */
static PyObject *
ba_current_task_swap(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    mod_state *st = PyModule_GetState(module);
    return PyUnicode_FromString(st->current_tasks != NULL ? "table" : "calls");
}

static PyMethodDef module_methods[] = {
    {"all", (PyCFunction)(void (*)(void))ba_all, METH_FASTCALL | METH_KEYWORDS, all_doc},
    {"all_settled", (PyCFunction)(void (*)(void))ba_all_settled,
     METH_FASTCALL | METH_KEYWORDS, all_settled_doc},
    {"flow", (PyCFunction)(void (*)(void))ba_flow, METH_FASTCALL | METH_KEYWORDS, flow_doc},
    {"_live_objects", ba_live_objects, METH_NOARGS,
     "Live engine objects per type in a debug build, else None."},
    {"_current_task_swap", ba_current_task_swap, METH_NOARGS,
     "How tasks become asyncio's current task: 'table' or 'calls'."},
    {NULL, NULL, 0, NULL},
};

static PyObject *
import_attr(const char *module, const char *attr)
{
    PyObject *mod = PyImport_ImportModule(module);
    if (mod == NULL) {
        return NULL;
    }
    PyObject *r = PyObject_GetAttrString(mod, attr);
    Py_DECREF(mod);
    return r;
}

#define INTERN(field, text)                                  \
    do {                                                     \
        if ((st->field = PyUnicode_InternFromString(text)) == NULL) { \
            return -1;                                       \
        }                                                    \
    } while (0)

#define IMPORT(field, module, attr)                          \
    do {                                                     \
        if ((st->field = import_attr(module, attr)) == NULL) { \
            return -1;                                       \
        }                                                    \
    } while (0)

#define ADD_TYPE(field, spec)                                                  \
    do {                                                                       \
        st->field = (PyTypeObject *)PyType_FromModuleAndSpec(module, &spec, NULL); \
        if (st->field == NULL) {                                               \
            return -1;                                                         \
        }                                                                      \
    } while (0)

static int
module_exec(PyObject *module)
{
    mod_state *st = PyModule_GetState(module);

    ADD_TYPE(GraphType, graph_spec);
    ADD_TYPE(NodeType, node_spec);
    ADD_TYPE(ContextType, context_spec);
    ADD_TYPE(SiblingType, sibling_spec);
    /* The base of the class form's context types (betterall/_graph.py). */
    if (PyModule_AddObjectRef(module, "Context", (PyObject *)st->ContextType) < 0) {
        return -1;
    }

    IMPORT(get_running_loop, "asyncio.events", "get_running_loop");
#if BA_HAVE_SWAP_CURRENT_TASK
    IMPORT(swap_current_task, "asyncio.tasks", "_swap_current_task");
#else
    IMPORT(enter_task, "asyncio.tasks", "_enter_task");
    IMPORT(leave_task, "asyncio.tasks", "_leave_task");
    IMPORT(current_task, "asyncio.tasks", "current_task");
#endif
    IMPORT(Task, "asyncio.tasks", "Task");
#if PY_VERSION_HEX < 0x030E0000
    /* asyncio's own table of current tasks (the dict that current_task()
     * reads and _swap_current_task/_enter_task write, one entry per loop)
     * on 3.11-3.13: the engine swaps its nodes in and out with one dict
     * store each instead of a call of those functions (docs/design.md,
     * "The current task").  From 3.14 on, asyncio keeps the current task in
     * the thread state and the table, still defined in asyncio/tasks.py,
     * is read only by its pure-Python fallback: never written there.
     * BETTERALL_SWAP_CALLS=1 makes it call the functions, as it does where
     * the table is missing; the tests run both ways.  Whichever is chosen,
     * betterall/_engine.py checks at import that a node really becomes the
     * current task, and uses the pure-Python engine if not. */
    const char *calls = getenv("BETTERALL_SWAP_CALLS");
    if (calls == NULL || calls[0] == '\0') {
        st->current_tasks = import_attr("asyncio.tasks", "_current_tasks");
        if (st->current_tasks == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
                return -1;
            }
            PyErr_Clear();
        }
        else if (!PyDict_CheckExact(st->current_tasks)) {
            Py_CLEAR(st->current_tasks);
        }
    }
#endif
    IMPORT(CancelledError, "asyncio.exceptions", "CancelledError");
    IMPORT(InvalidStateError, "asyncio.exceptions", "InvalidStateError");
    IMPORT(FlowEnd, "betterall._errors", "FlowEnd");
    IMPORT(CycleError, "betterall._errors", "CycleError");
    IMPORT(UnknownTaskError, "betterall._errors", "UnknownTaskError");
    IMPORT(Settled, "betterall._types", "Settled");
    IMPORT(Signal, "betterall._types", "Signal");
    IMPORT(InTask, "betterall._types", "InTask");
    IMPORT(FellBack, "betterall._fallback", "_FellBack");
    IMPORT(prepare, "betterall._prepare", "prepare");
    IMPORT(check_timeout, "betterall._prepare", "check_timeout");
    IMPORT(check_debug, "betterall._prepare", "check_debug");
    IMPORT(check_bind, "betterall._prepare", "check_bind");
    IMPORT(partial_type, "functools", "partial");
    IMPORT(in_task_coroutine, "betterall._support", "in_task_coroutine");
    IMPORT(TaskTrace, "betterall._trace", "TaskTrace");
    IMPORT(Trace, "betterall._trace", "Trace");
    IMPORT(report, "betterall._support", "report");
    IMPORT(monotonic, "time", "monotonic");

    INTERN(s_add_done_callback, "add_done_callback");
    INTERN(s_remove_done_callback, "remove_done_callback");
    INTERN(s_call_soon, "call_soon");
    INTERN(s_call_later, "call_later");
    INTERN(s_create_future, "create_future");
    INTERN(s_set_result, "set_result");
    INTERN(s_done, "done");
    INTERN(s_result, "result");
    INTERN(s_cancel, "cancel");
    INTERN(s_throw, "throw");
    INTERN(s_blocking, "_asyncio_future_blocking");
    INTERN(s_get_loop, "get_loop");
    INTERN(s_loop, "_loop");
    INTERN(s_abort, "_abort");
    INTERN(s_for_name, "for_name");
    INTERN(s_value, "value");
    INTERN(s_fulfilled, "fulfilled");
    INTERN(s_rejected, "rejected");
    INTERN(s_cancelled, "cancelled");
    INTERN(s_ended, "ended");
    INTERN(s_fallback, "fallback");
    INTERN(s_gi_code, "gi_code");
    INTERN(s_co_flags, "co_flags");
    PyObject *context = PyUnicode_InternFromString("context");
    if (context == NULL) {
        return -1;
    }
    st->kw_context = PyTuple_Pack(1, context);
    Py_DECREF(context);
    if (st->kw_context == NULL) {
        return -1;
    }
    return 0;
}

/* Every PyObject* field of the state, for traverse and clear. */
#define STATE_FIELDS(X)                                                        \
    X(GraphType) X(NodeType) X(ContextType) X(SiblingType)                     \
    X(get_running_loop) X(current_tasks) X(swap_current_task) X(enter_task)    \
    X(leave_task) X(current_task) X(Task) X(CancelledError) X(InvalidStateError)       \
    X(FlowEnd) X(CycleError) X(UnknownTaskError) X(Settled) X(Signal)          \
    X(InTask) X(FellBack)                                                      \
    X(prepare) X(check_timeout) X(check_debug) X(check_bind) X(partial_type)  \
    X(in_task_coroutine)                                                       \
    X(TaskTrace) X(Trace) X(report) X(monotonic) X(s_add_done_callback)          \
    X(s_remove_done_callback) X(s_call_soon) X(s_call_later) X(s_create_future) \
    X(s_set_result) X(s_done) X(s_result) X(s_cancel) X(s_throw) X(s_blocking)  \
    X(s_get_loop) X(s_loop)                                                    \
    X(s_abort) X(s_for_name) X(s_value) X(s_fulfilled) X(s_rejected)          \
    X(s_cancelled) X(s_ended) X(s_fallback) X(s_gi_code) X(s_co_flags) X(kw_context) X(stop_iter)

static int
module_traverse(PyObject *module, visitproc visit, void *arg)
{
    mod_state *st = PyModule_GetState(module);
#define VISIT(f) Py_VISIT(st->f);
    STATE_FIELDS(VISIT)
#undef VISIT
    return 0;
}

static int
module_clear(PyObject *module)
{
    mod_state *st = PyModule_GetState(module);
#define CLEAR(f) Py_CLEAR(st->f);
    STATE_FIELDS(CLEAR)
#undef CLEAR
    return 0;
}

static void
module_free(void *module)
{
    (void)module_clear((PyObject *)module);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    /* No Py_mod_multiple_interpreters slot: the default (several
     * interpreters sharing the GIL) is what the module state allows;
     * a per-interpreter GIL is not claimed until it is tested. */
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "betterall._cengine",
    .m_doc = "The native engine of betterall: dependency graphs stepped in C.",
    .m_size = sizeof(mod_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC
PyInit__cengine(void)
{
    return PyModuleDef_Init(&module_def);
}
