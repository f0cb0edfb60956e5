"""The entities of kehu's customer data center (MISSION.md D1).

``docs/data-model.md`` is generated from these definitions (``kehu docs data-model``) and a
test keeps it in step.
"""

from __future__ import annotations

from kehu.model.types import Column, ColumnType, Entity, Reference

S, I, F, D, T, B = (
    ColumnType.STRING,
    ColumnType.INT,
    ColumnType.FLOAT,
    ColumnType.DATE,
    ColumnType.TIMESTAMP,
    ColumnType.BOOL,
)

CHANNELS = {
    "store": "store", "门店": "store", "营业厅": "store", "shop": "store", "branch": "store",
    "网点": "store", "柜台": "store", "counter": "store",
    "hotline": "hotline", "热线": "hotline", "call": "hotline", "call centre": "hotline",
    "call center": "hotline", "呼叫中心": "hotline", "电话": "hotline", "phone": "hotline",
    "sms": "sms", "短信": "sms",
    "web": "web", "网站": "web", "网上": "web", "online": "web", "网银": "web", "官网": "web",
    "app": "app", "手机app": "app", "客户端": "app", "mobile": "app",
    "visit": "visit", "拜访": "visit", "上门": "visit", "field": "visit",
    "email": "email", "e-mail": "email", "邮件": "email", "电子邮件": "email",
    "wechat": "wechat", "微信": "wechat",
    "mail": "mail", "direct mail": "mail", "直邮": "mail", "信函": "mail",
    "push": "push", "app push": "push", "推送": "push",
    "partner": "partner", "渠道商": "partner", "代理": "partner", "agent": "partner",
    "other": "other", "其他": "other", "其它": "other",
}


def _c(name: str, typ: ColumnType, en: str, zh: str, *aliases: str, **kw: object) -> Column:
    return Column(name, typ, en, zh, aliases=aliases, **kw)  # type: ignore[arg-type]


CUSTOMERS = Entity(
    name="customers",
    title="Customers",
    title_zh="客户",
    description="People and companies the enterprise serves, one row per customer "
    "(after identity resolution, one row per kehu customer key).",
    key=("customer_id",),
    custom_attributes=True,
    time_column="signup_date",
    references=(Reference("account_manager_id", "employees", enforce=False),),
    columns=(
        _c("customer_id", S, "Customer id in the source system", "客户编号", "客户编号", "客户号",
           "客户id", "客户代码", "会员号", "会员编号", "用户编号", "用户id", "customer id", "cust_id",
           "customerid", "client_id", "member_id", "客户ID", required=True),
        _c("customer_type", S, "person or company", "客户类型（个人/企业）", "客户类型", "类型",
           "type", "customer type", choices={"person": "person", "个人": "person", "individual":
           "person", "p": "person", "company": "company", "企业": "company", "公司": "company",
           "单位": "company", "c": "company", "business": "company", "organisation": "company",
           "organization": "company", "集团": "company"}),
        _c("name", S, "Full name (person) or legal name (company)", "姓名或公司名称", "姓名",
           "客户名称", "客户姓名", "名称", "户名", "full name", "customer name", "name"),
        _c("gender", S, "M, F or other", "性别", "性别", "sex", choices={"m": "M", "male": "M",
           "男": "M", "f": "F", "female": "F", "女": "F", "other": "O", "o": "O", "其他": "O"}),
        _c("birth_date", D, "Date of birth (persons)", "出生日期", "出生日期", "生日", "birthday",
           "date of birth", "dob", not_future=True),
        _c("id_number", S, "National id / business registration number", "证件号码", "证件号码",
           "身份证号", "身份证", "证件号", "id no", "national id", "统一社会信用代码"),
        _c("phone", S, "Mobile or phone number", "手机号码", "手机号", "手机号码", "手机", "联系电话",
           "电话号码", "mobile", "phone number", "tel", "telephone", "cellphone"),
        _c("email", S, "E-mail address", "电子邮箱", "邮箱", "电子邮箱", "电子邮件地址", "e-mail",
           "email address", "mail"),
        _c("address", S, "Postal address", "地址", "地址", "联系地址", "通讯地址", "住址", "address"),
        _c("region", S, "Region or province", "地区/省份", "地区", "省份", "省", "区域", "大区",
           "province", "state", "region"),
        _c("city", S, "City", "城市", "城市", "市", "所在城市", "city"),
        _c("signup_date", D, "Date the customer relationship began", "入网/开户/注册日期",
           "注册日期", "开户日期", "入网日期", "入会日期", "首次注册", "加入日期", "signup date",
           "join date", "registration date", "created", "open date", not_future=True),
        _c("signup_channel", S, "Channel through which the customer joined", "注册渠道",
           "注册渠道", "入网渠道", "开户渠道", "来源渠道", "acquisition channel", "signup channel",
           choices=CHANNELS),
        _c("account_manager_id", S, "Employee id of the account manager (客户经理)",
           "客户经理编号", "客户经理", "客户经理编号", "客户经理工号", "经理工号", "account manager",
           "account manager id", "owner", "owner id", "rm_id"),
        _c("industry", S, "Industry (companies)", "行业（企业客户）", "行业", "所属行业", "industry",
           "sector"),
        _c("source_system", S, "System the record came from", "来源系统", "来源系统", "系统",
           "source", "source system"),
    ),
)

EMPLOYEES = Entity(
    name="employees",
    title="Employees",
    title_zh="员工",
    description="Account managers, agents and their teams (客户经理制).",
    key=("employee_id",),
    columns=(
        _c("employee_id", S, "Employee id", "员工编号", "员工编号", "工号", "员工号", "employee id",
           "staff id", "staff_id", required=True),
        _c("name", S, "Name", "姓名", "姓名", "员工姓名", "name", "employee name"),
        _c("team", S, "Team or branch", "团队/网点", "团队", "部门", "网点", "小组", "team",
           "department", "branch"),
        _c("role", S, "Role, e.g. account_manager, agent, manager", "岗位", "岗位", "职位",
           "角色", "role", "title", "position"),
        _c("manager_id", S, "Employee id of their manager", "上级工号", "上级", "上级工号",
           "manager", "manager id", "reports to"),
        _c("email", S, "E-mail", "邮箱", "邮箱", "email", "e-mail"),
        _c("region", S, "Region", "地区", "地区", "区域", "region"),
    ),
)

PRODUCTS = Entity(
    name="products",
    title="Products",
    title_zh="产品",
    description="Products and services with their category hierarchy and unit economics.",
    key=("product_id",),
    custom_attributes=True,
    columns=(
        _c("product_id", S, "Product id / SKU / plan code", "产品编号", "产品编号", "商品编号",
           "产品代码", "商品编码", "sku", "套餐编号", "product id", "item id", "product code",
           required=True),
        _c("name", S, "Product name", "产品名称", "产品名称", "商品名称", "套餐名称", "品名",
           "product name", "item name", "name"),
        _c("category", S, "Top-level category", "一级类目", "类别", "大类", "一级类目", "产品类别",
           "category", "category l1"),
        _c("subcategory", S, "Second-level category", "二级类目", "小类", "二级类目", "子类",
           "subcategory", "category l2"),
        _c("category3", S, "Third-level category", "三级类目", "三级类目", "category l3"),
        _c("brand", S, "Brand", "品牌", "品牌", "brand"),
        _c("unit_price", F, "List price per unit", "单价", "单价", "售价", "标价", "价格",
           "list price", "unit price", "price", min_value=0),
        _c("unit_cost", F, "Cost per unit", "单位成本", "成本价", "单位成本", "进价", "unit cost",
           "cost", min_value=0),
        _c("is_subscription", B, "Whether it is a plan/contract product", "是否合约产品",
           "是否合约", "是否套餐", "subscription", "is subscription"),
    ),
)

TRANSACTIONS = Entity(
    name="transactions",
    title="Transactions",
    title_zh="交易",
    description="Order lines or bills: what a customer bought or was billed, when and where. "
    "Refunds are lines with kind = refund and a negative amount.",
    key=("transaction_id",),
    time_column="transaction_time",
    references=(Reference("customer_id", "customers"), Reference("product_id", "products",
                enforce=False)),
    columns=(
        _c("transaction_id", S, "Order line / bill id (unique)", "交易流水号", "交易编号",
           "流水号", "交易流水号", "订单明细号", "账单编号", "transaction id", "line id", "txn id",
           "bill id", required=True),
        _c("order_id", S, "Order (basket) id grouping lines", "订单号", "订单号", "订单编号",
           "小票号", "order id", "order no", "basket id", "receipt"),
        _c("customer_id", S, "Customer id", "客户编号", "客户编号", "客户号", "会员号", "用户编号",
           "客户id", "customer id", "cust_id", "customerid", "member id", required=True),
        _c("transaction_time", T, "Time of the purchase or bill date", "交易时间", "交易时间",
           "交易日期", "订单时间", "下单时间", "消费日期", "消费时间", "账期", "日期", "date",
           "transaction date", "order date", "purchase date", "time", "timestamp",
           required=True, not_future=True),
        _c("product_id", S, "Product id", "产品编号", "产品编号", "商品编号", "商品编码", "sku",
           "套餐编号", "product id", "item id", "product code"),
        _c("quantity", F, "Quantity (units)", "数量", "数量", "件数", "qty", "quantity", "units",
           min_value=0),
        _c("amount", F, "Amount charged (after discount)", "金额", "金额", "交易金额", "实付金额",
           "消费金额", "账单金额", "应收", "amount", "sales", "revenue", "total", "value", "spend",
           required=True),
        _c("cost", F, "Cost of goods for the line", "成本", "成本", "成本金额", "cost",
           "cost amount", min_value=0),
        _c("discount", F, "Discount given", "折扣金额", "折扣", "优惠金额", "折扣金额", "discount",
           min_value=0),
        _c("channel", S, "Sales channel", "渠道", "渠道", "销售渠道", "购买渠道", "channel",
           choices=CHANNELS),
        _c("store_id", S, "Store / branch id", "门店编号", "门店", "门店编号", "网点编号", "store",
           "store id", "branch id"),
        _c("region", S, "Region of the sale", "地区", "地区", "区域", "region"),
        _c("kind", S, "purchase, refund or bill", "类型（购买/退货/账单）", "交易类型",
           "类型", "kind", "transaction type", choices={"purchase": "purchase", "购买": "purchase",
           "销售": "purchase", "sale": "purchase", "refund": "refund", "退货": "refund",
           "退款": "refund", "return": "refund", "bill": "bill", "账单": "bill", "话费": "bill"}),
    ),
)

CONTRACTS = Entity(
    name="contracts",
    title="Contracts and holdings",
    title_zh="合约/持有产品",
    description="Products a customer holds over time: telecom plans, bank deposits, "
    "subscriptions, with start and end (maturity) dates.",
    key=("contract_id",),
    time_column="start_date",
    references=(Reference("customer_id", "customers"), Reference("product_id", "products",
                enforce=False)),
    columns=(
        _c("contract_id", S, "Contract / account id", "合约编号", "合约编号", "合同编号", "账户号",
           "账号", "contract id", "account id", "holding id", required=True),
        _c("customer_id", S, "Customer id", "客户编号", "客户编号", "客户号", "客户id",
           "customer id", required=True),
        _c("product_id", S, "Product held", "产品编号", "产品编号", "套餐编号", "product id",
           "plan id"),
        _c("start_date", D, "Start date", "生效日期", "生效日期", "开始日期", "起始日", "开户日",
           "start date", "start", required=True, not_future=True),
        _c("end_date", D, "End or maturity date (may be in the future)", "到期日", "到期日",
           "结束日期", "到期日期", "end date", "maturity date", "end"),
        _c("status", S, "active, ended, cancelled or renewed", "状态", "状态", "合约状态",
           "status", choices={"active": "active", "有效": "active", "在网": "active",
           "正常": "active", "ended": "ended", "到期": "ended", "已到期": "ended",
           "expired": "ended", "cancelled": "cancelled", "canceled": "cancelled",
           "销户": "cancelled", "取消": "cancelled", "离网": "cancelled", "renewed": "renewed",
           "续约": "renewed", "已续约": "renewed"}),
        _c("monthly_fee", F, "Recurring fee per month", "月费", "月费", "月租", "monthly fee",
           "fee", min_value=0),
        _c("balance", F, "Balance held (deposits, credit lines)", "余额", "余额", "金额", "本金",
           "balance", "principal"),
        _c("auto_renew", B, "Renews automatically", "自动续约", "自动续约", "自动转存",
           "auto renew"),
    ),
)

INTERACTIONS = Entity(
    name="interactions",
    title="Interactions",
    title_zh="接触记录",
    description="Every contact with a customer on any channel (enterprise memory, D2/D5).",
    key=("interaction_id",),
    time_column="interaction_time",
    references=(Reference("customer_id", "customers"), Reference("employee_id", "employees",
                enforce=False)),
    columns=(
        _c("interaction_id", S, "Interaction id", "接触编号", "接触编号", "记录编号", "联系记录号",
           "interaction id", "contact id", required=True),
        _c("customer_id", S, "Customer id", "客户编号", "客户编号", "客户号", "customer id",
           required=True),
        _c("interaction_time", T, "When it happened", "接触时间", "接触时间", "联系时间", "时间",
           "interaction time", "time", "date", required=True, not_future=True),
        _c("channel", S, "Channel", "渠道", "渠道", "接触渠道", "channel", choices=CHANNELS,
           required=True),
        _c("type", S, "Type, e.g. inquiry, sales call, complaint, visit", "类型", "类型",
           "接触类型", "事由", "type", "reason"),
        _c("direction", S, "inbound or outbound", "方向（呼入/呼出）", "方向", "呼入呼出",
           "direction", choices={"inbound": "inbound", "in": "inbound", "呼入": "inbound",
           "来电": "inbound", "outbound": "outbound", "out": "outbound", "呼出": "outbound",
           "外呼": "outbound"}),
        _c("outcome", S, "Outcome", "结果", "结果", "处理结果", "outcome", "result"),
        _c("employee_id", S, "Employee who handled it", "处理人工号", "工号", "处理人", "坐席",
           "employee id", "agent id", "agent"),
        _c("text", S, "Notes / transcript summary", "内容", "内容", "备注", "摘要", "notes",
           "text", "summary", "content"),
    ),
)

TICKETS = Entity(
    name="tickets",
    title="Service tickets",
    title_zh="服务工单",
    description="Complaints and service requests with their resolution and satisfaction.",
    key=("ticket_id",),
    time_column="opened_time",
    references=(Reference("customer_id", "customers"), Reference("employee_id", "employees",
                enforce=False)),
    columns=(
        _c("ticket_id", S, "Ticket id", "工单编号", "工单编号", "工单号", "投诉编号", "ticket id",
           "case id", required=True),
        _c("customer_id", S, "Customer id", "客户编号", "客户编号", "customer id", required=True),
        _c("opened_time", T, "Opened", "受理时间", "受理时间", "创建时间", "投诉时间", "opened",
           "created", "open time", required=True, not_future=True),
        _c("resolved_time", T, "Resolved (empty while open)", "解决时间", "解决时间", "办结时间",
           "关闭时间", "resolved", "closed", "close time", not_future=True),
        _c("kind", S, "complaint or service_request", "类型（投诉/服务请求）", "工单类型",
           "kind", "ticket type", choices={"complaint": "complaint", "投诉": "complaint",
           "service_request": "service_request", "service request": "service_request",
           "服务请求": "service_request", "咨询": "service_request", "request":
           "service_request"}),
        _c("category", S, "Category, e.g. billing, network, product quality", "问题类别",
           "问题类别", "类别", "分类", "category"),
        _c("status", S, "open or resolved", "状态", "状态", "status", choices={"open": "open",
           "处理中": "open", "未解决": "open", "pending": "open", "resolved": "resolved",
           "已解决": "resolved", "closed": "resolved", "已关闭": "resolved", "办结": "resolved"}),
        _c("priority", S, "Priority", "优先级", "优先级", "priority"),
        _c("satisfaction", I, "Satisfaction score 1–5 after resolution", "满意度（1-5）",
           "满意度", "satisfaction", "csat", min_value=1, max_value=5),
        _c("channel", S, "Channel it came in on", "渠道", "渠道", "受理渠道", "channel",
           choices=CHANNELS),
        _c("employee_id", S, "Employee who owns it", "处理人工号", "处理人", "工号",
           "employee id", "owner"),
    ),
)

PAYMENTS = Entity(
    name="payments",
    title="Invoices and payments",
    title_zh="账单与缴费",
    description="Invoices with due date and payment: drives arrears analysis and credit terms.",
    key=("payment_id",),
    time_column="invoice_date",
    references=(Reference("customer_id", "customers"),),
    columns=(
        _c("payment_id", S, "Invoice id", "账单编号", "账单编号", "发票号", "缴费编号",
           "invoice id", "payment id", required=True),
        _c("customer_id", S, "Customer id", "客户编号", "客户编号", "customer id", required=True),
        _c("invoice_date", D, "Invoice date", "出账日期", "出账日期", "账单日期", "开票日期",
           "invoice date", required=True, not_future=True),
        _c("due_date", D, "Due date", "到期日", "缴费截止日", "最后缴费日", "due date"),
        _c("paid_date", D, "Date paid (empty while unpaid)", "缴费日期", "缴费日期", "付款日期",
           "paid date", "payment date", not_future=True),
        _c("amount_due", F, "Amount invoiced", "应缴金额", "应缴金额", "应收金额", "账单金额",
           "amount due", "invoice amount", required=True, min_value=0),
        _c("amount_paid", F, "Amount paid", "实缴金额", "实缴金额", "已付金额", "amount paid",
           min_value=0),
        _c("method", S, "Payment method", "缴费方式", "缴费方式", "支付方式", "method",
           "payment method"),
    ),
)

CAMPAIGNS = Entity(
    name="campaigns",
    title="Campaigns",
    title_zh="营销活动",
    description="Marketing campaigns run in other systems (campaigns created in kehu are "
    "copied here by the analysis run).",
    key=("campaign_id",),
    time_column="start_date",
    columns=(
        _c("campaign_id", S, "Campaign id", "活动编号", "活动编号", "活动id", "campaign id",
           required=True),
        _c("name", S, "Name", "活动名称", "活动名称", "名称", "campaign name", "name"),
        _c("channel", S, "Channel", "渠道", "渠道", "channel", choices=CHANNELS),
        _c("goal", S, "Goal, e.g. cross_sell, retention, reactivation", "目标", "目标", "goal"),
        _c("start_date", D, "Start", "开始日期", "开始日期", "start date", "start"),
        _c("end_date", D, "End", "结束日期", "结束日期", "end date", "end"),
        _c("cost_fixed", F, "Fixed cost", "固定成本", "固定成本", "fixed cost", min_value=0),
        _c("cost_per_contact", F, "Cost per contact", "单次接触成本", "单次成本",
           "cost per contact", min_value=0),
    ),
)

CAMPAIGN_CONTACTS = Entity(
    name="campaign_contacts",
    title="Campaign contacts",
    title_zh="活动触达",
    description="Who was selected by a campaign, in which group (treatment or control) and "
    "when they were contacted.",
    key=("contact_id",),
    time_column="contact_time",
    references=(Reference("customer_id", "customers"), Reference("campaign_id", "campaigns")),
    columns=(
        _c("contact_id", S, "Contact id", "触达编号", "触达编号", "contact id", required=True),
        _c("campaign_id", S, "Campaign id", "活动编号", "活动编号", "campaign id", required=True),
        _c("customer_id", S, "Customer id", "客户编号", "客户编号", "customer id", required=True),
        _c("contact_time", T, "When contacted (or selected, for the control group)", "触达时间",
           "触达时间", "发送时间", "contact time", "sent", required=True, not_future=True),
        _c("group", S, "treatment or control", "分组（实验/对照）", "分组", "组别", "group",
           required=True, choices={"treatment": "treatment", "实验组": "treatment",
           "test": "treatment", "目标组": "treatment", "t": "treatment",
           "control": "control", "对照组": "control", "holdout": "control", "c": "control"}),
        _c("channel", S, "Channel", "渠道", "渠道", "channel", choices=CHANNELS),
        _c("offer", S, "Offer made", "优惠内容", "优惠", "offer"),
    ),
)

RESPONSES = Entity(
    name="responses",
    title="Campaign responses",
    title_zh="活动响应",
    description="Responses and conversions attributed to a campaign.",
    key=("response_id",),
    time_column="response_time",
    references=(Reference("customer_id", "customers"), Reference("campaign_id", "campaigns")),
    columns=(
        _c("response_id", S, "Response id", "响应编号", "响应编号", "response id", required=True),
        _c("campaign_id", S, "Campaign id", "活动编号", "活动编号", "campaign id", required=True),
        _c("customer_id", S, "Customer id", "客户编号", "客户编号", "customer id", required=True),
        _c("response_time", T, "When", "响应时间", "响应时间", "response time", "time",
           required=True, not_future=True),
        _c("response_type", S, "e.g. open, click, accept, purchase, decline, opt_out",
           "响应类型", "响应类型", "response type", "type"),
        _c("revenue", F, "Revenue attributed", "带来收入", "收入", "带来收入", "revenue"),
    ),
)

SURVEYS = Entity(
    name="surveys",
    title="Surveys",
    title_zh="满意度调查",
    description="NPS (0–10) and CSAT (1–5) survey answers.",
    key=("survey_response_id",),
    time_column="survey_time",
    references=(Reference("customer_id", "customers"),),
    columns=(
        _c("survey_response_id", S, "Answer id", "答卷编号", "答卷编号", "问卷编号",
           "response id", "survey id", required=True),
        _c("customer_id", S, "Customer id", "客户编号", "客户编号", "customer id", required=True),
        _c("survey_time", T, "When answered", "调查时间", "调查时间", "答卷时间", "survey time",
           "date", required=True, not_future=True),
        _c("kind", S, "nps or csat", "类型（NPS/CSAT）", "调查类型", "kind", "survey type",
           required=True, choices={"nps": "nps", "净推荐值": "nps", "csat": "csat",
           "满意度": "csat"}),
        _c("score", I, "Score (NPS 0–10, CSAT 1–5)", "分数", "分数", "得分", "评分", "score",
           required=True, min_value=0, max_value=10),
        _c("comment", S, "Free-text comment", "意见", "意见", "评论", "备注", "comment"),
    ),
)

REFERRALS = Entity(
    name="referrals",
    title="Referrals",
    title_zh="老客户推荐",
    description="A customer (referrer) bringing another (referred): 老客户推荐.",
    key=("referral_id",),
    time_column="referral_date",
    references=(Reference("referrer_id", "customers"), Reference("referred_id", "customers",
                enforce=False)),
    columns=(
        _c("referral_id", S, "Referral id", "推荐编号", "推荐编号", "referral id", required=True),
        _c("referrer_id", S, "Customer who referred", "推荐人编号", "推荐人", "推荐人编号",
           "referrer", "referrer id", required=True),
        _c("referred_id", S, "Customer referred (once they are one)", "被推荐人编号",
           "被推荐人", "被推荐人编号", "referred", "referred id"),
        _c("referral_date", D, "Date of the referral", "推荐日期", "推荐日期", "referral date",
           "date", required=True, not_future=True),
        _c("converted_date", D, "Date the referred became a customer", "转化日期", "转化日期",
           "converted date", not_future=True),
        _c("channel", S, "Channel", "渠道", "渠道", "channel", choices=CHANNELS),
    ),
)

CHURN_EVENTS = Entity(
    name="churn_events",
    title="Churn events",
    title_zh="流失事件",
    description="Customers who left: when, why and to which competitor (流失去向).",
    key=("churn_event_id",),
    time_column="churn_date",
    references=(Reference("customer_id", "customers"),),
    columns=(
        _c("churn_event_id", S, "Event id", "流失编号", "流失编号", "事件编号", "event id",
           "churn id", required=True),
        _c("customer_id", S, "Customer id", "客户编号", "客户编号", "customer id", required=True),
        _c("churn_date", D, "Date of churn", "流失日期", "流失日期", "离网日期", "销户日期",
           "churn date", "date", required=True, not_future=True),
        _c("reason", S, "Stated reason", "流失原因", "流失原因", "离网原因", "原因", "reason"),
        _c("destination", S, "Competitor the customer went to", "流失去向", "流失去向",
           "转网去向", "去向", "competitor", "destination"),
        _c("kind", S, "voluntary or involuntary", "类型（主动/被动）", "流失类型", "kind",
           choices={"voluntary": "voluntary", "主动": "voluntary", "主动流失": "voluntary",
           "involuntary": "involuntary", "被动": "involuntary", "被动流失": "involuntary",
           "欠费": "involuntary"}),
    ),
)

LEADS = Entity(
    name="leads",
    title="Leads",
    title_zh="销售线索",
    description="Sales leads and their way through the funnel: lead → prospect → customer "
    "(or lost).",
    key=("lead_id",),
    time_column="created_date",
    references=(Reference("customer_id", "customers", enforce=False),
                Reference("owner_id", "employees", enforce=False)),
    columns=(
        _c("lead_id", S, "Lead id", "线索编号", "线索编号", "线索id", "lead id", required=True),
        _c("created_date", D, "When the lead came in", "创建日期", "创建日期", "获取日期",
           "created", "lead date", required=True, not_future=True),
        _c("source", S, "Where it came from (campaign, web form, referral, event …)",
           "线索来源", "来源", "线索来源", "source", "lead source"),
        _c("channel", S, "Channel", "渠道", "渠道", "channel", choices=CHANNELS),
        _c("prospect_date", D, "When it was qualified as a prospect", "转为商机日期",
           "转商机日期", "商机日期", "qualified date", "prospect date", not_future=True),
        _c("converted_date", D, "When it became a customer", "成交日期", "成交日期",
           "转化日期", "converted date", "won date", not_future=True),
        _c("lost_date", D, "When it was lost", "丢失日期", "丢失日期", "lost date",
           not_future=True),
        _c("customer_id", S, "The customer it became", "客户编号", "客户编号", "customer id"),
        _c("owner_id", S, "Employee who owns the lead", "负责人工号", "负责人", "owner",
           "owner id"),
    ),
)

BUDGETS = Entity(
    name="budgets",
    title="Budgets",
    title_zh="预算",
    description="Planned values per month (预算): a measure of the cube (revenue, margin, "
    "orders, buyers), optionally for one value of a dimension (region, tier, category …).",
    key=("budget_id",),
    time_column="month",
    columns=(
        _c("budget_id", S, "Budget line id", "预算编号", "预算编号", "budget id", required=True),
        _c("month", D, "Month (first day, or 2025-01)", "月份", "月份", "预算月份", "month",
           required=True),
        _c("measure", S, "revenue, margin, orders or buyers", "指标", "指标", "measure",
           required=True, choices={"revenue": "revenue", "收入": "revenue", "销售额": "revenue",
                                   "margin": "margin", "毛利": "margin", "orders": "orders",
                                   "订单数": "orders", "buyers": "buyers", "购买客户数": "buyers"}),
        _c("dimension", S, "Cube dimension, e.g. region, tier, category (empty: total)",
           "维度", "维度", "dimension"),
        _c("dimension_value", S, "Value of the dimension, e.g. 广东, gold", "维度取值",
           "维度取值", "dimension value"),
        _c("amount", F, "Planned value", "预算值", "预算值", "预算金额", "amount", "budget",
           required=True),
    ),
)

ENTITIES: dict[str, Entity] = {
    e.name: e
    for e in (
        EMPLOYEES, PRODUCTS, CUSTOMERS, TRANSACTIONS, CONTRACTS, INTERACTIONS, TICKETS, PAYMENTS,
        CAMPAIGNS, CAMPAIGN_CONTACTS, RESPONSES, SURVEYS, REFERRALS, CHURN_EVENTS, LEADS,
        BUDGETS,
    )
}
#: the order in which a full load imports entities so references resolve
IMPORT_ORDER: tuple[str, ...] = tuple(ENTITIES)


def entity(name: str) -> Entity:
    """Look up an entity by name (English, e.g. ``transactions``; singular accepted).

    >>> entity("transaction").name
    'transactions'
    """
    from kehu.errors import KehuInputError
    from kehu.i18n import _

    key = name.strip().lower().replace("-", "_")
    if key in ENTITIES:
        return ENTITIES[key]
    if key + "s" in ENTITIES:
        return ENTITIES[key + "s"]
    raise KehuInputError(
        _("Unknown entity '{name}'. Expected one of: {names}.").format(
            name=name, names=", ".join(ENTITIES)
        )
    )
