/* Module state, object layouts and small helpers shared by every part of
 * the engine.
 *
 * There is no static mutable state: everything the engine caches (asyncio
 * functions, betterall's Python classes, interned strings) lives in the
 * module state, and every object keeps a pointer to it (through its graph),
 * so no hot path or dealloc looks the module up.
 */
#ifndef BETTERALL_STATE_H
#define BETTERALL_STATE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <assert.h>
#include <time.h>

/* Debug builds (BETTERALL_DEBUG_BUILD=1 defines BA_DEBUG and undefines
 * NDEBUG): BA_ASSERT checks the engine's invariants, and the module counts
 * its live objects per type (see _live_objects()), which the test suite
 * checks after every test.  Release builds compile both away. */
enum { LIVE_GRAPH, LIVE_NODE, LIVE_CONTEXT, LIVE_SIBLING, LIVE_KINDS };
#ifdef BA_DEBUG
#define BA_ASSERT(cond) assert(cond)
#define BA_LIVE_ADD(st, kind, d) ((st)->live[kind] += (d))
#else
#define BA_ASSERT(cond) ((void)0)
#define BA_LIVE_ADD(st, kind, d) ((void)0)
#endif

#if PY_VERSION_HEX < 0x030C0000
#  include <structmember.h>
#  define Py_T_PYSSIZET T_PYSSIZET
#  define Py_READONLY READONLY
#endif

#if PY_VERSION_HEX >= 0x030C0000
#  define BA_HAVE_SWAP_CURRENT_TASK 1
#else
#  define BA_HAVE_SWAP_CURRENT_TASK 0
#endif

/* Modes of a graph. */
enum { MODE_ALL = 0, MODE_SETTLED = 1, MODE_FLOW = 2 };
/* The entry point of each mode, for messages: betterall.<mode_names[m]>(). */
static const char *const mode_names[] = {"all", "all_settled", "flow"};

/* Words, in C, in betterall/_py.py and in docs/design.md alike:
 *   - a node's *state* is where it is in its life (NODE_*), a Sibling's where
 *     its wait is (SIB_*); the module state is `mst` on objects, `st` in
 *     locals, never "state";
 *   - a node's *status* is how it ended (STATUS_*, TaskTrace.status);
 *   - a task's *context* is its `self` (ContextObject; _Context in Python),
 *     and its copy of the caller's contextvars.Context is its *vars*;
 *   - a node's *result* is its value, its *error* what it raised; the
 *     graph's *report* is the debug= value (NULL/None: not traced), its
 *     *caller_exc* the CancelledError thrown into the caller. */

/* Node states. */
enum { NODE_PENDING = 0, NODE_RUNNING = 1, NODE_DONE = 2 };

/* Node statuses (meaningful once DONE). */
enum {
    STATUS_NONE = 0,
    STATUS_FULFILLED,
    STATUS_REJECTED,
    STATUS_CANCELLED,
    STATUS_ENDED,
};

/* Sibling awaitable states. */
enum {
    SIB_INIT = 0,   /* not registered anywhere */
    SIB_BLOCKED,    /* registered in target->waiters: the target runs */
    SIB_DONE,       /* the target finished: the outcome is the target's */
    SIB_CANCELLED,  /* the wait was cancelled (not the target) */
};

typedef struct {
    PyTypeObject *GraphType;
    PyTypeObject *NodeType;
    PyTypeObject *ContextType;
    PyTypeObject *SiblingType;

    /* asyncio */
    PyObject *get_running_loop;
    PyObject *current_tasks;     /* loop -> current task, or NULL: see graph_swap_in */
    PyObject *swap_current_task; /* 3.12+ */
    PyObject *enter_task;        /* 3.11 */
    PyObject *leave_task;        /* 3.11 */
    PyObject *current_task;      /* 3.11 */
    PyObject *Task;              /* asyncio.Task: what a node's __class__ says */
    PyObject *CancelledError;
    PyObject *InvalidStateError;

    /* betterall's Python side */
    PyObject *FlowEnd;
    PyObject *CycleError;
    PyObject *UnknownTaskError;
    PyObject *Settled;
    PyObject *Signal;
    PyObject *InTask;
    PyObject *FellBack;    /* a fallback's value on its way (betterall._fallback) */
    PyObject *prepare;
    PyObject *check_timeout;
    PyObject *check_debug;
    PyObject *check_bind;
    PyObject *partial_type; /* functools.partial: its calling rule is decided in Python */
    PyObject *in_task_coroutine;
    PyObject *TaskTrace;   /* a tuple subclass: see graph_report */
    PyObject *Trace;
    PyObject *report;
    PyObject *monotonic;

    /* interned strings */
    PyObject *s_add_done_callback;
    PyObject *s_remove_done_callback;
    PyObject *s_call_soon;
    PyObject *s_call_later;
    PyObject *s_create_future;
    PyObject *s_set_result;
    PyObject *s_done;
    PyObject *s_result;
    PyObject *s_cancel;
    PyObject *s_throw;
    PyObject *s_blocking; /* "_asyncio_future_blocking" */
    PyObject *s_get_loop;
    PyObject *s_loop;     /* "_loop" */
    PyObject *s_abort;    /* "_abort" */
    PyObject *s_for_name;
    PyObject *s_value;
    PyObject *s_fulfilled;
    PyObject *s_rejected;
    PyObject *s_cancelled;
    PyObject *s_ended;
    PyObject *s_fallback;
    PyObject *s_gi_code;
    PyObject *s_co_flags;
    PyObject *kw_context; /* ("context",) */
    /* One StopIteration reused for the results of awaits of finished
     * siblings (see raise_stop_iteration_reused); NULL between calls. */
    PyObject *stop_iter;
#ifdef BA_DEBUG
    Py_ssize_t live[LIVE_KINDS];
#endif
} mod_state;

/* In a dealloc: one object of `kind` fewer.  The state comes from the type
 * (a heap type made from the module), never from the object's fields,
 * which may already be cleared. */
static inline void
ba_live_dealloc(PyTypeObject *tp, int kind)
{
#ifdef BA_DEBUG
    /* At interpreter exit the type may have let go of its module already:
     * then nobody counts any more (and PyType_GetModuleState would raise). */
    /* A Python subclass (the class form's context types) counts as its
     * engine base. */
    while (tp != NULL && !(tp->tp_flags & Py_TPFLAGS_HEAPTYPE &&
                           ((PyHeapTypeObject *)tp)->ht_module != NULL)) {
        tp = tp->tp_base;
    }
    if (tp == NULL) {
        return;
    }
    mod_state *st = PyType_GetModuleState(tp);
    if (st != NULL) {
        assert(st->live[kind] > 0);
        st->live[kind]--;
    }
#else
    (void)tp;
    (void)kind;
#endif
}

typedef struct GraphObject GraphObject;
typedef struct NodeObject NodeObject;

struct NodeObject {
    PyObject_HEAD
    mod_state *mst;         /* the module state, cached */
    /* Borrowed: the graph owns its nodes, and detaches them (sets this to
     * NULL) when it goes away, so a graph and its nodes form no reference
     * cycle and a finished call is freed by reference counting alone. */
    GraphObject *graph;
    PyObject *name;         /* str */
    PyObject *fn;           /* the task function */
    PyObject *coro;         /* the iterator the engine steps, or NULL */
    PyObject *vars;         /* contextvars.Context, a copy of the caller's */
    PyObject *result;       /* value once fulfilled */
    PyObject *error;        /* exception once rejected */
    PyObject *fut_waiter;   /* the outside future it waits on, or NULL */
    PyObject *parked;       /* the SiblingObject it is parked on, or NULL */
    PyObject *waiters;      /* SiblingObjects blocked on it: a reference set
                               (see refs_len) */
    PyObject *blocked_on;   /* its own blocked SiblingObject waits: a
                               reference set */
    PyObject *callbacks;    /* list of (fn, context) for add_done_callback */
    PyObject *proxy;        /* borrowed: its ContextObject (self), while alive */
    PyObject *wakeup;       /* bound builtin used as a done callback; dropped
                               when the node finishes (it refers back) */
    PyObject *cancel_msg;
    PyObject *resume_exc;   /* exception to throw in at the next step */
    PyObject *deps;         /* tracing: the one awaited sibling's name, or a
                               list of their names (in first-await order), or
                               past 8 a dict of them to None, or NULL */
    PyObject *waits;        /* tracing: the one (start, end) pair, or a list of
                               them, or NULL */
    PyObject *weakreflist;
    double t_start, t_end;
    int num_cancels_requested;
    int visit;              /* cycle search mark */
    /* Small enums and flags, one byte each: a node's size matters (docs/performance-log.md:
     * at most 400 bytes per task). */
    unsigned char state;
    unsigned char status;
    unsigned char wants_ctx;
    unsigned char in_task;
    unsigned char must_cancel;
    unsigned char cancelled_by_graph;
    unsigned char stop_pending; /* the graph's stop went to fut_waiter, which
                                   may swallow it (gather whose child failed):
                                   the next step throws CancelledError anyway */
    unsigned char timed_out;
    unsigned char ended;
    unsigned char queued;
    unsigned char fell_back; /* fulfilled with a fallback's value */
};

struct GraphObject {
    PyObject_HEAD
    mod_state *mst;         /* the module state, cached */
    int mode;
    int started;
    int decided;
    int finished;      /* the result was handed out (or raised) */
    int draining;
    int has_timeout;
    int nodes_tracked; /* graph_track_nodes() has run */
    int has_mark;      /* tracing: t_mark may stand for the next start */
    double t_mark;     /* tracing: when the last node finished */
    double timeout;
    Py_ssize_t n;
    Py_ssize_t remaining; /* nodes not DONE */
    NodeObject **nodes;   /* n strong references, mapping order */
    PyObject *names;      /* dict: name -> node, built on first use */
    PyObject *tasks;      /* a copy of the caller's dict (exact dicts only),
                             made as bind_result when set; also the name
                             table when it is an exact dict */
    /* The class form's binding (_bind=, see betterall/_graph.py), or NULL:
     * the type of each task's `self` (a subtype of Context), the attribute
     * dict every such `self` shares, and the dict subclass of the result. */
    PyTypeObject *bind_context;
    PyObject *bind_dict;
    PyObject *bind_result;
    PyObject *loop;
    PyObject *signal;     /* Signal, made on demand */
    PyObject *abort_reason;
    PyObject *error;      /* the outcome's error (all, flow) */
    PyObject *end_value;  /* flow */
    PyObject *caller_exc; /* CancelledError thrown into the caller */
    PyObject *done_fut;   /* the future the caller waits on */
    PyObject *timer;      /* TimerHandle of timeout=, or NULL */
    PyObject *report;     /* debug: True or a callable, or NULL */
    PyObject *cb_context; /* context for the engine's loop callbacks */
    PyObject *drain_cb;   /* bound builtin: drain from a loop callback */
    PyObject *weakreflist;
    NodeObject **ready;   /* ready queue (borrowed: nodes owns them) */
    Py_ssize_t ready_head, ready_len, ready_cap;
    NodeObject **soon;    /* nodes that yielded to the loop (borrowed) */
    Py_ssize_t soon_len, soon_cap;
    PyObject *soon_cb;    /* bound builtin scheduled once per batch of them */
    PyObject *outer;      /* the current task a batch of steps swapped out */
    PyObject *caller;     /* the task current when the call started (its
                             caller), or None; kept until every node has
                             finished, for asyncio's call-graph introspection
                             (see node_get_awaited_by) */
    PyObject *spare_ctx;  /* a finished task's `self` that nobody else held,
                             given to the next task (see context_release) */
    NodeObject *current;  /* the node swapped in as current task, if any */
    double t_start, t_end;
    int visit_epoch;
};

typedef struct {
    PyObject_HEAD
    NodeObject *node; /* strong */
    PyObject *signal; /* the graph's Signal, handed over when the graph goes */
    PyObject *spare;  /* the last SiblingObject it made, reused once free */
    PyObject *weakreflist;
} ContextObject;

typedef struct {
    PyObject_HEAD
    NodeObject *waiter;   /* strong: whose `self` made it */
    NodeObject *target;   /* strong: the sibling awaited */
    PyObject *callbacks;  /* list of (fn, context): foreign awaiters */
    PyObject *cancel_msg;
    PyObject *weakreflist;
    double t_wait;
    int state;
    int blocking;         /* _asyncio_future_blocking */
    int parked;           /* the engine parked the waiter on it */
} SiblingObject;

/* -- small helpers -------------------------------------------------------- */

/* Small reference sets (a node's waiters, its own blocked waits): almost
 * always empty or of one element, so a slot holds NULL, the one element
 * itself, or a list once there are more.  Saves a list per wait.  Changed
 * with refs_add and refs_remove (sibling.h). */
static inline Py_ssize_t
refs_len(PyObject *slot)
{
    return slot == NULL ? 0 : PyList_CheckExact(slot) ? PyList_GET_SIZE(slot) : 1;
}

static inline PyObject *
refs_item(PyObject *slot, Py_ssize_t i)
{
    return PyList_CheckExact(slot) ? PyList_GET_ITEM(slot, i) : slot;
}

/* RuntimeError for a task's context, or a wait of it, used after its call
 * has finished.  Always NULL.  (A sibling awaitable taken during the call
 * still gives its result.) */
static PyObject *
context_gone(NodeObject *node)
{
    PyErr_Format(PyExc_RuntimeError,
                 "the betterall call of task %R is no longer running", node->name);
    return NULL;
}

/* The arguments of a METH_FASTCALL | METH_KEYWORDS method that takes
 * `required` positional arguments (0 or 1), then one optional argument
 * `name`, by position or keyword (by keyword only when `kwonly`).  Sets
 * *opt to it (borrowed) or NULL.  0, or -1 with TypeError(usage). */
static int
parse_optional(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
               Py_ssize_t required, const char *name, int kwonly,
               PyObject **opt, const char *usage)
{
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs < required || nargs + nkw > required + 1 ||
        (kwonly && nargs != required) ||
        (nkw == 1 &&
         PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), name) != 0)) {
        PyErr_SetString(PyExc_TypeError, usage);
        return -1;
    }
    *opt = nargs + nkw > required ? args[required] : NULL;
    return 0;
}

/* Fetch the raised exception (normalised), leaving none set. */
static inline PyObject *
ba_fetch_exc(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) {
        return NULL;
    }
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL) {
        PyException_SetTraceback(value, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

/* Raise `exc` (an exception instance) itself; steals no reference. */
static inline void
ba_raise(PyObject *exc)
{
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
}

/* Restore an exception fetched with ba_fetch_exc (steals it). */
static inline void
ba_restore_exc(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyObject *tb = PyException_GetTraceback(exc);
    PyErr_Restore((PyObject *)Py_NewRef(Py_TYPE(exc)), exc, tb);
#endif
}

/* time.monotonic(), read without a Python call where the clock is known to
 * be the same one: PyTime_MonotonicRaw from 3.13 on; before, CLOCK_MONOTONIC
 * on Linux, which is what time.monotonic() reads there.  Elsewhere, a call
 * of time.monotonic(). */
static inline double
ba_now(mod_state *st)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyTime_t t_raw;
    if (PyTime_MonotonicRaw(&t_raw) == 0) {
        return PyTime_AsSecondsDouble(t_raw);
    }
#elif defined(__linux__) && defined(CLOCK_MONOTONIC)
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0) {
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    }
#endif
    PyObject *t = PyObject_CallNoArgs(st->monotonic);
    if (t == NULL) {
        PyErr_Clear();
        return 0.0;
    }
    double v = PyFloat_AsDouble(t);
    Py_DECREF(t);
    return v;
}

/* -- the engine's internal interface ---------------------------------------
 *
 * The functions one part of the engine calls in another (or before its own
 * definition), by the header that defines them, each with its contract.
 * Unless it says otherwise, a function returning int returns 0 or -1 with
 * an exception set, and one returning PyObject * a new reference or NULL
 * with an exception set.  Everything is static: the engine is one
 * compilation unit (_cengine.c includes the headers in this order). */

/* node.h: one graph task, stepped by the engine. */
static inline void untrack_while_running(GraphObject *g, PyObject *op); /* skip op in GC while the graph runs */
static inline void track_again(PyObject *op);              /* undo untrack_while_running (op may be NULL) */
static void node_track(NodeObject *node);                 /* let the GC see a node and what it skipped with it */
static int call_soon_in(PyObject *loop, mod_state *st, PyObject *fn, PyObject *arg,
                        PyObject *context);                /* loop.call_soon(fn, arg, context=context) */
static int call_soon(GraphObject *g, PyObject *fn, PyObject *arg, PyObject *context); /* the same, on g's loop */
static int node_finish(NodeObject *node, int status, PyObject *value,
                       PyObject *error);                   /* mark done, wake its waiters; steals nothing */
static int node_step(NodeObject *node);                   /* run one step (call, send or throw) */
static void node_resume_soon_alone(NodeObject *node);     /* resume from the loop, outside any batch */
static int node_handle_yield(NodeObject *node, PyObject *yielded); /* wait on what its coroutine yielded */
static int node_cancel(NodeObject *node, PyObject *msg);  /* Task.cancel(): 1 if requested, 0 if done, -1 */
static PyObject *node_get_wakeup(NodeObject *node);       /* its bound wakeup callback (borrowed) */
static Py_ssize_t remove_callbacks(PyObject *list, PyObject *fn); /* drop (fn, ctx) pairs: how many */

/* sibling.h: `self.user`, one wait of a task on a sibling. */
static void sibling_unregister(SiblingObject *s);         /* withdraw the wait from its target */
static void sibling_start(SiblingObject *s, PyObject *target); /* (re)start s as a wait on target */
static PyObject *send_result_to_iter(PySendResult r, PyObject *result,
                                     int is_iternext);     /* am_send's result as send()/__next__ give it */
static int sibling_complete_all(NodeObject *target);      /* target finished: complete every wait on it */

/* context.h: `self`, the lazy proxy to a task's siblings. */
static void context_release(GraphObject *g, PyObject *obj); /* drop a `self` (stolen); may keep it as spare */

/* graph.h: one call, its ready queue, its outcome and its result. */
static void graph_enqueue(GraphObject *g, NodeObject *node); /* queue node to be resumed by graph_drain */
static int graph_drain(GraphObject *g);                   /* step the queued nodes until none is left */
static int graph_push_soon(GraphObject *g, NodeObject *node); /* resume node on the loop's next turn */
static int graph_schedule_drain(GraphObject *g);          /* drain on the loop's next turn (once) */
static int graph_complete(GraphObject *g);                /* the last node finished: resolve the call */
static int graph_swap_in(GraphObject *g, NodeObject *node); /* make node asyncio's current task */
static int graph_swap_out(GraphObject *g);                /* put the batch's outer task back */
static inline double graph_start_time(GraphObject *g);    /* tracing: a node's start time */
static PyObject *graph_get_signal(GraphObject *g);        /* the call's ba.Signal, made on first use */
static int graph_decide(GraphObject *g, PyObject *reason,
                        NodeObject *except);               /* decide the outcome once; cancel the rest */
static int graph_fail(GraphObject *g, NodeObject *node, PyObject *err); /* node raised err */
static int graph_end(GraphObject *g, NodeObject *node, PyObject *value,
                     PyObject *reason);                    /* node called _end(value) in a flow */
static PyObject *graph_result_impl(GraphObject *g);       /* the call's result, or raise its error */
static PyObject *graph_names(GraphObject *g);             /* name -> node table (borrowed), built once */

#endif /* BETTERALL_STATE_H */
